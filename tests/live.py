"""A real ``powermeter serve`` on a loopback port, for tests that need the whole process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

POWERMETER = [sys.executable, "-m", "powermeter"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DEFAULT_SECRET = "live-test-secret-0123456789abcdef0123456"


def server_env(tmp_path: Path, database_url: str, secret: str = DEFAULT_SECRET) -> dict[str, str]:
    """The test process's environment without any POWERMETER_* setting, plus a data dir, database and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
    env.update(
        {
            "POWERMETER_DATA_DIR": str(tmp_path / "data"),
            "POWERMETER_DATABASE_URL": database_url,
            "POWERMETER_SECRET_KEY": secret,
        }
    )
    return env


@contextlib.contextmanager
def live_process(
    args: list[str],
    env: dict[str, str],
    log: Path,
    base: str,
    ready_path: str,
    start_timeout: float = 120.0,
    mode: str = "w",
) -> Iterator[str]:
    """Run ``args`` (output to ``log``), wait until ``base + ready_path`` answers 200, yield ``base``, stop
    the process at the end. The start-up wait is generous: on a loaded 2-core CI machine a server (two
    workers more so) can take tens of seconds to start."""
    with log.open(mode) as fh:
        proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{' '.join(args[:4])} did not start: " + log.read_text())
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def live_server(
    env: dict[str, str], log: Path, port: int | None = None, workers: int = 1, start_timeout: float = 120.0
) -> Iterator[str]:
    """Start ``powermeter serve [--workers N]`` (its output goes to ``log``), wait for /healthz, yield the
    base URL (no trailing slash), stop it at the end."""
    port = port or free_port()
    args = [*POWERMETER, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    with live_process(args, env, log, f"http://127.0.0.1:{port}", "/healthz", start_timeout) as base:
        yield base


def create_key(env: dict[str, str], email: str = "dev@example.com", name: str = "test") -> str:
    res = subprocess.run(
        [*POWERMETER, "keys", "create", "--email", email, "--name", name, "--create-account"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return res.stdout.strip()
