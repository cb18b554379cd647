"""Fixtures shared by the routing integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.settings import Settings
from tests.accounts import accounts_for

DAY = datetime(2026, 11, 22, tzinfo=UTC)
UPSTREAM_APP = Path(__file__).with_name("upstream_app.py")
REGIONS = ("CAISO", "PJM", "BPA")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def write_series(path: Path, series: dict[str, Callable[[int], float]], days: int = 1) -> Path:
    lines = ["region,timestamp,intensity"]
    for region, f in series.items():
        for h in range(24 * days):
            lines.append(f"{region},{(DAY + timedelta(hours=h)).isoformat()},{f(h)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def csv_client(
    settings: Settings, clock: FrozenClock, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[dict[str, Callable[[int], float]]], TestClient]]:
    """``csv_client(series)``: an app whose grid provider replays ``series`` (one day, hourly)."""
    clients: list[TestClient] = []

    def make(series: dict[str, Callable[[int], float]], plans: dict[str, Any] | None = None) -> TestClient:
        path = write_series(tmp_path / f"grid{len(clients)}.csv", series)
        update: dict[str, Any] = {"grid_provider": "csv", "grid_csv_path": path}
        if plans:
            update["plans_json"] = json.dumps(plans)
        app = create_app(settings.model_copy(update=update), clock=clock)
        c = TestClient(app)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
        c.app.state.pm.db.dispose()  # type: ignore[attr-defined]


def key_for(client: TestClient, clock: FrozenClock, plan: str = "core", scopes: list[str] | None = None) -> str:

    st = client.app.state.pm  # type: ignore[attr-defined]
    with st.db.begin() as conn:
        acct = accounts_for(st.settings).create_account(
            conn, f"{plan}-{id(scopes)}@example.com", clock.now(), plan=plan
        )
        return accounts_for(st.settings).create_key(conn, acct, "k", clock.now(), scopes).key


# ---------------------------------------------------------------------- real upstream servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class Upstreams:
    procs: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ports = {name: free_port() for name in REGIONS}
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(UPSTREAM_APP), name, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for name, port in ports.items()
    }
    try:
        for port in ports.values():
            wait_port(port)
        yield Upstreams(procs, ports)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
