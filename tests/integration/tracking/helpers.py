"""A real server for the tracking and import tests, and helpers to run ``powermeter`` against it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.live import create_key, live_server, server_env

POWERMETER = [sys.executable, "-m", "powermeter"]


@dataclass
class Live:
    env: dict[str, str]  # the server's environment (database, secret)
    tmp: Path
    url: str
    key: str

    def client_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
        env.update(
            {
                "POWERMETER_URL": self.url,
                "POWERMETER_API_KEY": self.key,
                "POWERMETER_SPOOL_DIR": str(self.tmp / "spool"),
                "POWERMETER_POWERCAP_DIR": str(self.tmp / "none"),
            }
        )
        env.update(extra)
        return env

    def receipts(self, job_id: str | None = None) -> dict[str, Any]:
        params = {"limit": 1000, **({"job_id": job_id} if job_id else {})}
        r = httpx.get(self.url + "/v1/receipts", params=params, headers={"Authorization": f"Bearer {self.key}"})
        r.raise_for_status()
        data: dict[str, Any] = r.json()["data"]
        return data

    def receipt_of(self, job_id: str) -> dict[str, Any]:
        found = self.receipts(job_id)["receipts"]
        assert len(found) == 1, found
        rid = found[0]["receipt_id"]
        r = httpx.get(f"{self.url}/v1/receipts/{rid}", headers={"Authorization": f"Bearer {self.key}"})
        doc: dict[str, Any] = r.json()["data"]
        return doc


@contextlib.contextmanager
def started(tmp: Path, key: str | None = None) -> Iterator[Live]:
    env = server_env(tmp, f"sqlite:///{tmp / 'server.db'}")
    with live_server(env, tmp / "server.out") as base:
        yield Live(env, tmp, base, key or create_key(env, "dev@example.com", "tracking"))


def run(args: list[str], env: dict[str, str], timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POWERMETER, *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)
