"""Exact daily quotas across machines: two ``powermeter serve`` processes on different ports, one
PostgreSQL schema and one Redis, concurrent load split over both (docs/scaling.md "Ingest path")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, needs_postgres, needs_redis
from tests.live import POWERMETER, live_server, server_env

pytestmark = [needs_postgres, needs_redis]

CALLS = 25  # the daily call quota of plan "dev" here
KWH_CAP = 10.0  # the daily kWh cap of plan "core" here
BIG_JOB = {"duration_minutes": 120, "cpu_cores": 16, "memory_gb": 64, "gpu_cores": 2, "geo_iso": "US"}
SMALL_JOB = {"duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": "US"}


def _key(env: dict[str, str], email: str, plan: str) -> str:
    args = [*POWERMETER, "keys", "create", "--email", email, "--name", "t", "--plan", plan, "--create-account"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[list[str], dict[str, str], dict[str, str]]]:
    env = server_env(tmp_path, database_url)
    assert REDIS_URL is not None
    env |= {
        "POWERMETER_REDIS_URL": REDIS_URL,
        "POWERMETER_RATELIMIT_PREFIX": "pmq-" + uuid.uuid4().hex[:12],
        "POWERMETER_LOG_REQUESTS": "false",
        "POWERMETER_PLANS_JSON": json.dumps(
            {"dev": {"daily_calls": CALLS, "daily_kwh": None}, "core": {"daily_calls": None, "daily_kwh": KWH_CAP}}
        ),
    }
    keys = {"calls": _key(env, "calls@example.com", "dev"), "kwh": _key(env, "kwh@example.com", "core")}
    with contextlib.ExitStack() as stack:
        bases = [stack.enter_context(live_server(env, tmp_path / f"server{i}.log")) for i in range(2)]
        yield bases, keys, env


async def _fire(bases: list[str], key: str, job: dict[str, object], n: int) -> list[httpx.Response]:
    h = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=h, timeout=30, limits=httpx.Limits(max_connections=64)) as c:

        async def one(i: int) -> httpx.Response:
            # alternate between the two processes
            return await c.post(bases[i % 2] + "/v1/report", json={"job_id": f"j-{uuid.uuid4().hex}", **job})

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_two_processes_accept_exactly_the_quota_and_never_pass_the_kwh_cap(
    two_servers: tuple[list[str], dict[str, str], dict[str, str]],
) -> None:
    bases, keys, env = two_servers

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        calls, kwh = await asyncio.gather(
            _fire(bases, keys["calls"], SMALL_JOB, 3 * CALLS), _fire(bases, keys["kwh"], BIG_JOB, 24)
        )
        return calls, kwh

    calls, kwh = asyncio.run(both())

    # exactly N of an N-call quota, whichever process answered
    codes = [r.status_code for r in calls]
    assert codes.count(200) == CALLS, {c: codes.count(c) for c in set(codes)}
    assert codes.count(429) == 2 * CALLS
    assert all(r.json()["error_code"] == "RATE_LIMIT_EXCEEDED" for r in calls if r.status_code == 429)
    ok_hosts = {str(r.request.url.port) for r in calls if r.status_code == 200}
    assert len(ok_hosts) == 2  # both processes took part
    again = httpx.post(
        bases[1] + "/v1/report",
        json={"job_id": "one-more", **SMALL_JOB},
        headers={"Authorization": f"Bearer {keys['calls']}"},
    )
    assert again.status_code == 429

    # the kWh cap: as many identical jobs as fit, never one more
    accepted = [r.json()["data"]["kwh"] for r in kwh if r.status_code == 200]
    refused = [r for r in kwh if r.status_code != 200]
    assert accepted, [r.text for r in kwh][:2]
    per_job = accepted[0]
    assert per_job > KWH_CAP / 10  # the test's premise: the cap binds within the attempts
    assert sum(accepted) <= KWH_CAP + 1e-9
    assert len(accepted) == int(KWH_CAP * 1_000_000 // round(per_job * 1_000_000))
    assert refused
    assert all(r.status_code == 429 for r in refused)
    assert all(r.json()["error_code"] == "USAGE_CAP_EXCEEDED" for r in refused)
    h = {"Authorization": f"Bearer {keys['kwh']}"}
    nxt = httpx.post(bases[0] + "/v1/report", json={"job_id": "next", **BIG_JOB}, headers=h)
    assert nxt.status_code == 429
    # the database ledger (what /v1/api-keys/stats reads) agrees with what was accepted
    stats = httpx.get(bases[0] + "/v1/api-keys/stats", headers=h).json()["data"]
    assert stats["daily_usage_kwh"] == pytest.approx(sum(accepted), abs=1e-6)
    # both chains stay whole although two processes appended to them (a batch's appends to an account go in
    # one statement, guarded by the head this process last wrote: a stale guess falls back to the row lock)
    out = subprocess.run(
        [*POWERMETER, "audit", "verify", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    reports = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    by_email = {r["email"]: r for r in reports}
    assert by_email["calls@example.com"]["entries_checked"] >= CALLS
    assert by_email["kwh@example.com"]["entries_checked"] >= len(accepted)
