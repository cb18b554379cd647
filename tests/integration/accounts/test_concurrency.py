"""Many simultaneous requests against a real server: no stall, nothing lost, refused requests undone alone.

(Regression: requests waiting for the database used to hold every worker thread, so the one holding
the write lock could not finish.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import create_key, live_server, server_env


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    env = server_env(tmp_path, database_url)
    env["POWERMETER_LOG_REQUESTS"] = "false"
    key = create_key(env, "c@example.com", "load")
    with live_server(env, tmp_path / "server.log") as base:
        yield base, key


def test_two_hundred_concurrent_writes_all_land_and_refusals_roll_back_alone(live: tuple[str, str]) -> None:
    base, key = live
    h = {"Authorization": f"Bearer {key}"}

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base, headers=h, timeout=30, limits=limits) as c:

            async def one(i: int) -> httpx.Response:
                geo = "US" if i % 4 else "XX-NOWHERE"  # every fourth job names an unknown location
                return await c.post(
                    "/v1/report",
                    json={"job_id": f"job-{i}", "duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": geo},
                )

            return await asyncio.gather(*(one(i) for i in range(200)))

    started = time.monotonic()
    responses = asyncio.run(run())
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 150, [r.text for r in responses if r.status_code not in (200, 400)][:3]
    assert codes.count(400) == 50
    print(f"200 requests in {elapsed:.2f} s")
    receipts = httpx.get(base + "/v1/receipts?limit=1000", headers=h).json()["data"]
    assert receipts["total"] == 150
    assert {r["job_id"] for r in receipts["receipts"]} == {f"job-{i}" for i in range(200) if i % 4}
    stats = httpx.get(base + "/v1/api-keys/stats", headers=h).json()["data"]
    assert stats["daily_api_calls"] == 150 + 2  # refused reports are not counted; the two reads are
