"""Throwaway Redis and PostgreSQL servers that a test starts, kills and restarts, and a small
filesystem for SQLite. Each helper says why it cannot run (a ``skip_reason``) where a tool is missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.live import free_port, live_server

# --- Redis -----------------------------------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


def redis_skip_reason() -> str | None:
    return None if REDIS_SERVER else "redis-server is not installed"


class ThrowawayRedis:
    """``redis-server`` on a free loopback port, no persistence; ``kill()`` and ``start()`` again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("redis-server did not start")
            time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextlib.contextmanager
def throwaway_redis(workdir: Path) -> Iterator[ThrowawayRedis]:
    r = ThrowawayRedis(workdir)
    r.start()
    try:
        yield r
    finally:
        r.kill()


# --- PostgreSQL ------------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    candidates = [os.environ.get("POWERMETER_TEST_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


PG_BINDIR = _pg_bindir()


def _as_postgres_prefix() -> list[str] | None:
    """Run the server as ``postgres`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return [runuser, "-u", "postgres", "--"] if runuser else None


def postgres_skip_reason() -> str | None:
    if PG_BINDIR is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if _as_postgres_prefix() is None:
        return "running as root, and no 'postgres' user or no runuser to start PostgreSQL as that user"
    return None


class ThrowawayPostgres:
    """A cluster made by ``initdb`` in a temporary directory, on a free loopback port."""

    def __init__(self) -> None:
        assert PG_BINDIR is not None
        self.bindir = PG_BINDIR
        self.prefix = _as_postgres_prefix() or []
        self.root = Path(tempfile.mkdtemp(prefix="pm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        res = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if res.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(f"{args[0]} failed: {res.stdout}{res.stderr}\n{log}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )

    def start(self) -> None:
        # fsync=off keeps the test fast on a busy disk and does not weaken what it shows: a committed
        # transaction's WAL is written to the kernel before COMMIT returns (synchronous_commit=on), and
        # an immediate stop kills the server, not the kernel, so nothing written is lost
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=100 "
            "-c fsync=off -c synchronous_commit=on"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop_immediate(self) -> None:
        """``pg_ctl -m immediate stop``: the server quits at once, as in a crash (recovery at next start)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.cleanup()


# --- a small filesystem for SQLite ---------------------------------------------------------------


def small_fs_skip_reason(probe_dir: Path) -> str | None:
    """A tmpfs can be mounted (root, and a kernel/container that allows it)."""
    if not sys.platform.startswith("linux"):
        return "needs Linux tmpfs"
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    if not shutil.which("mount") or not shutil.which("umount"):
        return "the mount and umount commands are not installed"
    probe_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe_dir)], capture_output=True, text=True
    )
    if res.returncode != 0:
        return f"mount is not allowed here: {res.stderr.strip()}"
    subprocess.run(["umount", str(probe_dir)], check=True)
    return None


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


# --- a live server with several workers ------------------------------------------------------------


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[str]:
    """``powermeter serve --workers N`` on a free loopback port; the base URL once /healthz answers."""
    with live_server(env, log, workers=workers) as base:
        yield base
