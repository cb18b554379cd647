"""Shared harness for HTTP benchmarks: start a server pinned to CPU 0, load it with wrk pinned to CPU 1.

Each benchmark measures its route and the bare FastAPI baseline (``bare_app.py``) in the same run,
with the same tool, and prints the ratio. Needs Debian's ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


@contextlib.contextmanager
def server(target: str, env: dict[str, str] | None = None, factory: bool = False) -> Iterator[str]:
    """Run ``uvicorn target`` on one worker (pinned to CPU 0); yields the base URL."""
    port = free_port()
    cmd = [
        *_taskset(0),
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        cmd.append("--factory")
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server {target} did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def wrk(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    duration_s: int = 8,
    connections: int = 32,
    warmup_s: int = 2,
) -> dict[str, float]:
    """Run wrk; returns requests/s and latency percentiles (ms). Non-2xx responses are an error."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    lua_lines = [f'wrk.method = "{method}"']
    if body is not None:
        lua_lines.append(f"wrk.body = {json.dumps(body.decode())}")
    for k, v in (headers or {}).items():
        lua_lines.append(f'wrk.headers["{k}"] = "{v}"')
    lua_lines.append(
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("NON2XX %d\\n", summary.errors.status))\n'
        "end"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(lua_lines))
        script = fh.name
    base = [*_taskset(1), "wrk", "-t1", f"-c{connections}", "--latency", "-s", script]
    if warmup_s:
        subprocess.run([*base, f"-d{warmup_s}s", url], capture_output=True, check=False)
    out = subprocess.run([*base, f"-d{duration_s}s", url], capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = int(re.search(r"NON2XX (\d+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "non2xx": non2xx}


def bare_baseline(duration_s: int = 8, post_body: bytes | None = None) -> dict[str, float]:
    with server("benchmarks.bare_app:app") as base:
        if post_body is None:
            return wrk(base + "/ping", duration_s=duration_s)
        return wrk(
            base + "/echo",
            method="POST",
            body=post_body,
            headers={"Content-Type": "application/json"},
            duration_s=duration_s,
        )


def powermeter_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        "POWERMETER_DATA_DIR": str(tmp),
        "POWERMETER_SECRET_KEY": "bench-secret-0123456789abcdef0123456789abcdef",
        "POWERMETER_LOG_REQUESTS": "false",
        "POWERMETER_PLANS_JSON": json.dumps(
            {"dev": {"daily_calls": None, "daily_kwh": None, "per_minute": 10_000_000, "route_monthly_calls": None}}
        ),
    }
    env.update(extra)
    return env


def make_key(env: dict[str, str], email: str = "bench@example.com") -> str:
    res = subprocess.run(
        [sys.executable, "-m", "powermeter", "keys", "create", "--email", email, "--name", "bench", "--create-account"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return res.stdout.strip()


def report(name: str, ours: dict[str, float], bare: dict[str, float], goal_ratio: float | None = None) -> None:
    ratio = ours["rps"] / bare["rps"]
    goal = f" (goal ≥ {goal_ratio:.0%})" if goal_ratio else ""
    print(
        f"{name}: {ours['rps']:.0f} req/s, p50 {ours['p50_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms, "
        f"non-2xx {ours['non2xx']:.0f}"
    )
    print(f"bare FastAPI: {bare['rps']:.0f} req/s, p50 {bare['p50_ms']:.2f} ms")
    print(f"ratio: {ratio:.1%}{goal}")


@contextlib.contextmanager
def pg_schema(pg_url: str | None, app_name: str | None = None) -> Iterator[str | None]:
    """A fresh PostgreSQL schema of ``pg_url`` (dropped at the end) as a database URL, or ``None`` for
    SQLite; ``app_name`` tags the connections (``pg_stat_activity.application_name``)."""
    if not pg_url:
        yield None
        return
    import sqlalchemy as sa

    schema = "bench_" + secrets.token_hex(6)
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in pg_url else "?"
        tag = f"&application_name={app_name}" if app_name else ""
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}{tag}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
