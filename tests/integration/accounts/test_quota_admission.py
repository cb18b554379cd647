"""Daily quotas through the ingest path of the database in use: on PostgreSQL with Redis, admission in
Redis and the database ledger written at the batch's commit (docs/scaling.md "Ingest path"). A refused
or failed request gives its admission back; the counters match what was stored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.settings import Settings
from tests.accounts import accounts_for

CALLS = 5
JOB = {"duration_minutes": 60, "cpu_cores": 4, "memory_gb": 8, "geo_iso": "US"}


@pytest.fixture
def quota_client(settings: Settings, clock: FrozenClock) -> Iterator[tuple[TestClient, dict[str, str]]]:
    limited = settings.model_copy(update={"plans_json": json.dumps({"dev": {"daily_calls": CALLS}})})
    app = create_app(limited, clock=clock)
    st = app.state.pm
    with st.db.begin() as conn:
        acct = accounts_for(limited).create_account(conn, "q@example.com", clock.now())
        key = accounts_for(limited).create_key(conn, acct, "k", clock.now()).key
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {key}"}
    st.db.dispose()


def test_refused_reports_give_their_admission_back(quota_client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = quota_client
    for i in range(3):  # refused after the call was admitted: not counted
        r = c.post("/v1/report", json={"job_id": f"bad-{i}", **JOB, "geo_iso": "XX-NOWHERE"}, headers=h)
        assert r.status_code == 400
    kwh = 0.0
    for i in range(CALLS - 1):
        r = c.post("/v1/report", json={"job_id": f"ok-{i}", **JOB}, headers=h)
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Remaining"] == str(CALLS - 1 - i)
        kwh += r.json()["data"]["kwh"]
    stats = c.get("/v1/api-keys/stats", headers=h)  # the last call of the quota
    assert stats.status_code == 200
    assert stats.json()["data"]["daily_api_calls"] == CALLS
    assert stats.json()["data"]["daily_usage_kwh"] == pytest.approx(kwh, abs=1e-6)
    r = c.post("/v1/report", json={"job_id": "one-too-many", **JOB}, headers=h)
    assert r.status_code == 429
    assert r.json()["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert c.get("/v1/receipts?job_id=one-too-many", headers=h).status_code == 429  # still over


def test_a_rereported_job_is_answered_from_its_receipt_and_not_counted_twice(
    quota_client: tuple[TestClient, dict[str, str]],
) -> None:
    c, h = quota_client
    first = c.post("/v1/report", json={"job_id": "same", **JOB}, headers=h)
    again = c.post("/v1/report", json={"job_id": "same", **JOB}, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json()["data"]["replayed"] is True
    assert again.json()["data"]["receipt_id"] == first.json()["data"]["receipt_id"]
    conflict = c.post("/v1/report", json={"job_id": "same", **JOB, "cpu_cores": 8}, headers=h)
    assert conflict.status_code == 409
    stats = c.get("/v1/api-keys/stats", headers=h).json()["data"]
    assert stats["daily_api_calls"] == 3  # two reports and this read; the 409 is not counted
    assert stats["daily_usage_kwh"] == pytest.approx(first.json()["data"]["kwh"], abs=1e-6)
