"""Daily quota (00:00 UTC reset), per-minute limits (shared through Redis), error shapes, idempotency."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from powermeter.accounts import service
from powermeter.accounts.deps import Auth, Tx
from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.conftest import REDIS_URL, MakeKey, needs_redis


class WorkIn(BaseModel):
    kwh: float = Field(ge=0)
    label: str


def _work_routes(app: FastAPI) -> None:
    r = APIRouter()

    @r.post("/v1/test/work")
    def v1_work(body: WorkIn, tx: Tx = Auth("report:write")) -> dict[str, Any]:
        total = service.add_daily_kwh(tx.conn, tx.principal, body.kwh, tx.now)
        return {"status": "success", "data": {"label": body.label, "total_kwh": total, "nonce": uuid.uuid4().hex}}

    @r.post("/api/v1/test/work")
    def api_work(body: WorkIn, tx: Tx = Auth("devices:write")) -> dict[str, Any]:
        return {"label": body.label}

    @r.get("/v1/test/boom")
    def boom(tx: Tx = Auth()) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app.include_router(r)


def _settings_with_plan(settings: Settings, **plan: Any) -> Settings:
    return settings.model_copy(update={"plans_json": json.dumps({"dev": plan})})


def test_daily_call_quota_resets_at_midnight_utc(settings: Settings, clock: FrozenClock, tmp_path: Any) -> None:
    s = _settings_with_plan(settings, daily_calls=3)
    clock.set(datetime(2026, 11, 22, 23, 59, 0, tzinfo=UTC))
    app = create_app(s, clock=clock)
    with TestClient(app) as c, app.state.pm.db.begin() as conn:
        acct = accounts_for(s).create_account(conn, "q@example.com", clock.now())
        key = accounts_for(s).create_key(conn, acct, "k", clock.now()).key
    h = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        for _ in range(3):
            r = c.get("/v1/me", headers=h)  # /v1/me does not count
            assert r.status_code == 200
        _work_routes(app)
        for i in range(3):
            r = c.post("/v1/test/work", json={"kwh": 0, "label": str(i)}, headers=h)
            assert r.status_code == 200, r.text
            assert r.headers["RateLimit-Remaining"] == str(2 - i)
            assert r.headers["RateLimit-Limit"] == "3"
        r = c.post("/v1/test/work", json={"kwh": 0, "label": "x"}, headers=h)
        assert r.status_code == 429
        assert r.json()["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert r.headers["Retry-After"] == "60"  # 23:59:00 → 00:00:00
        assert set(r.json()) >= {"detail", "error_code", "timestamp"}
        clock.set(datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC))
        r = c.post("/v1/test/work", json={"kwh": 0, "label": "y"}, headers=h)
        assert r.status_code == 200
        assert r.headers["RateLimit-Remaining"] == "2"
    app.state.pm.db.dispose()


def test_refused_calls_are_not_counted(app: FastAPI, client: TestClient, auth: dict[str, str]) -> None:
    _work_routes(app)
    r = client.post("/v1/test/work", json={"kwh": -1, "label": "bad"}, headers=auth)
    assert r.status_code == 400
    r = client.post("/v1/test/work", json={"kwh": 1, "label": "ok"}, headers=auth)
    assert r.headers["RateLimit-Remaining"] == "999"


def test_daily_kwh_cap_refuses_the_whole_request(app: FastAPI, client: TestClient, auth: dict[str, str]) -> None:
    _work_routes(app)
    assert client.post("/v1/test/work", json={"kwh": 30, "label": "a"}, headers=auth).status_code == 200
    r = client.post("/v1/test/work", json={"kwh": 25, "label": "b"}, headers=auth)
    assert r.status_code == 429
    assert r.json()["error_code"] == "USAGE_CAP_EXCEEDED"
    assert "50 kWh/day" in r.json()["detail"]
    r = client.post("/v1/test/work", json={"kwh": 20, "label": "c"}, headers=auth)
    assert r.json()["data"]["total_kwh"] == pytest.approx(50.0)


def test_validation_errors_name_the_field_in_each_family(
    app: FastAPI, client: TestClient, auth: dict[str, str]
) -> None:
    _work_routes(app)
    r = client.post("/v1/test/work", json={"kwh": "lots"}, headers=auth)
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"kwh", "label"}
    assert "label: field required" in body["detail"]
    r = client.post("/api/v1/test/work", json={"kwh": -2, "label": "x"}, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"].startswith("kwh:")
    r = client.post("/v1/test/work", content=b"{not json", headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]


def test_unknown_routes_and_internal_errors_use_the_family_shape(app: FastAPI, auth: dict[str, str]) -> None:
    _work_routes(app)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/nope", headers=auth)
        assert r.status_code == 404
        assert r.json()["error_code"] == "NOT_FOUND"
        r = c.get("/calc/api/nope")
        assert r.status_code == 404
        assert r.json() == {"error": "not_found"}
        r = c.get("/v1/test/boom", headers=auth)
        assert r.status_code == 500
        assert r.json()["error_code"] == "INTERNAL_ERROR"
        assert "passwd" not in r.text
        assert "Traceback" not in r.text


def test_per_minute_limit_on_the_token_api(app: FastAPI, client: TestClient, api_key: str) -> None:
    h = {"X-API-Key": api_key}
    for i in range(60):
        r = client.get("/api/v1/me/tokens", headers=h)
        assert r.status_code == 200, i
        assert r.headers["RateLimit-Remaining"] == str(59 - i)
    r = client.get("/api/v1/me/tokens", headers=h)
    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "rate_limited"
    assert 1 <= body["retry_after"] <= 60
    assert r.headers["Retry-After"] == str(body["retry_after"])


@needs_redis
def test_per_minute_limit_is_shared_by_two_instances_through_redis(
    settings: Settings, clock: FrozenClock, make_key: MakeKey
) -> None:
    assert REDIS_URL
    key = make_key()
    h = {"X-API-Key": key}
    a = create_app(settings, clock=clock)
    b = create_app(settings, clock=clock)
    with TestClient(a) as ca, TestClient(b) as cb:
        for i in range(60):
            r = (ca if i % 2 else cb).get("/api/v1/me/tokens", headers=h)
            assert r.status_code == 200, (i, r.text)
        assert ca.get("/api/v1/me/tokens", headers=h).status_code == 429
        r = cb.get("/api/v1/me/tokens", headers=h)
        assert r.status_code == 429
        assert r.json()["error"] == "rate_limited"
    for x in (a, b):
        x.state.pm.db.dispose()


def test_idempotent_retry_replays_without_doing_the_work_twice(
    app: FastAPI, client: TestClient, auth: dict[str, str]
) -> None:
    _work_routes(app)
    h = {**auth, "Idempotency-Key": "batch-2026-11-22-a"}
    first = client.post("/v1/test/work", json={"kwh": 10, "label": "a"}, headers=h)
    again = client.post("/v1/test/work", json={"kwh": 10, "label": "a"}, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # same nonce: the route did not run again
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/test/work", json={"kwh": 10, "label": "a"}, headers=auth)
    assert other.json()["data"]["total_kwh"] == pytest.approx(20.0)  # only one earlier 10 kWh was counted
    r = client.post("/v1/test/work", json={"kwh": 11, "label": "a"}, headers=h)
    assert r.status_code == 422
    assert r.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"


def test_idempotency_keys_are_scoped_to_the_caller(app: FastAPI, client: TestClient, make_key: MakeKey) -> None:
    _work_routes(app)
    k1, k2 = make_key(email="a@example.com"), make_key(email="b@example.com")
    body = {"kwh": 1, "label": "same"}
    r1 = client.post("/v1/test/work", json=body, headers={"X-API-Key": k1, "Idempotency-Key": "k"})
    r2 = client.post("/v1/test/work", json=body, headers={"X-API-Key": k2, "Idempotency-Key": "k"})
    assert r1.json()["data"]["nonce"] != r2.json()["data"]["nonce"]
    assert "Idempotent-Replayed" not in r2.headers


def test_idempotency_record_expires_after_a_day(
    app: FastAPI, client: TestClient, auth: dict[str, str], clock: FrozenClock
) -> None:
    _work_routes(app)
    h = {**auth, "Idempotency-Key": "old"}
    first = client.post("/v1/test/work", json={"kwh": 0, "label": "a"}, headers=h)
    clock.advance(timedelta(hours=25))
    later = client.post("/v1/test/work", json={"kwh": 0, "label": "a"}, headers=h)
    assert later.json()["data"]["nonce"] != first.json()["data"]["nonce"]
