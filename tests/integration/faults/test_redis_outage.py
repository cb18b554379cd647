"""Redis killed and restarted under the app: no 500, the documented policy, recovery by itself.

A throwaway ``redis-server`` on a free port; the app in-process (the Redis client and the app are real).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.infra import ratelimit
from powermeter.infra.ratelimit import RateLimiter
from powermeter.jobs.tables import receipts
from powermeter.settings import Settings
from tests.conftest import MakeKey
from tests.integration.faults.services import ThrowawayRedis, redis_skip_reason, throwaway_redis

needs_redis_server = pytest.mark.skipif(redis_skip_reason() is not None, reason=redis_skip_reason() or "")

PER_MINUTE = 5
DAILY_CALLS = 4
COST = {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}}


@pytest.fixture
def rds(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    with throwaway_redis(tmp_path) as r:
        yield r


def _settings(settings: Settings, rds: ThrowawayRedis, **extra: object) -> Settings:
    plans = {"dev": {"per_minute": PER_MINUTE, "daily_calls": DAILY_CALLS}}
    # a new Settings, not model_copy: that would keep the cached plans of the original
    return Settings(**{**settings.model_dump(), "redis_url": rds.url, "plans_json": json.dumps(plans), **extra})


def _wait_until_redis_used_again(c: TestClient, key: str) -> None:
    """After a restart the limiter tries Redis again within its back-off (at most BACKOFF_MAX_S)."""
    limiter: RateLimiter = c.app.state.pm.limiter  # type: ignore[attr-defined]
    deadline = time.monotonic() + ratelimit.BACKOFF_MAX_S * 1.2 + 5
    while limiter.redis_down:
        assert time.monotonic() < deadline, "the limiter never went back to Redis"
        time.sleep(0.1)
        r = c.get("/healthz")  # /healthz tries Redis for real, whatever the back-off
        assert r.status_code in (200, 503)


@needs_redis_server
def test_redis_down_fails_open_with_warning_and_metric_daily_quota_stays_exact_then_recovers(
    settings: Settings,
    make_key: MakeKey,
    rds: ThrowawayRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(_settings(settings, rds))
    key = make_key(scopes=["devices:read", "devices:write", "report:write", "receipts:read"])
    h = {"X-API-Key": key}
    probe = redis.Redis(port=rds.port)
    with TestClient(app) as c:
        assert c.get("/api/v1/me/devices", headers=h).status_code == 200
        assert c.post("/calc/api/cost", json=COST).status_code == 200
        ok = c.post(
            "/v1/report",
            headers=h,
            json={"job_id": "before", "duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": "US"},
        )
        assert ok.status_code == 200
        before_id = ok.json()["data"]["receipt_id"]
        assert any(probe.scan_iter(f"{settings.ratelimit_prefix}*")), "the limits were not counted in Redis"

        rds.kill()
        with caplog.at_level(logging.WARNING, logger="powermeter.ratelimit"):
            per_key = [c.get("/api/v1/me/devices", headers=h) for _ in range(3)]
            per_ip = [c.post("/calc/api/cost", json=COST) for _ in range(3)]
        assert [r.status_code for r in per_key] == [200] * 3, per_key[0].text
        assert [r.status_code for r in per_ip] == [200] * 3, per_ip[0].text
        # fail open: counted per process, so the limit headers still say what is left
        assert per_key[-1].headers["RateLimit-Remaining"] == str(PER_MINUTE - 3)
        warnings = [r.getMessage() for r in caplog.records if r.name == "powermeter.ratelimit"]
        assert len(warnings) == 1
        assert "Redis unreachable" in warnings[0]
        assert "fail open" in warnings[0]
        metrics = c.get("/metrics").text
        assert 'powermeter_ratelimit_degraded_total{limit="key"} 3' in metrics
        assert 'powermeter_ratelimit_degraded_total{limit="ip"} 3' in metrics
        assert "powermeter_ratelimit_redis_up 0" in metrics
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["redis"].startswith("down")
        assert "fail open" in health.json()["checks"]["redis"]
        assert health.json()["checks"]["database"] == "ok"

        # the daily quota lives in the database: exact while Redis is down (4 calls a day)
        report = {"duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": "US"}
        answers = [c.post("/v1/report", headers=h, json={"job_id": f"down-{i}", **report}) for i in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[-1].json()["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert "daily API call limit of 4" in answers[-1].json()["detail"]

        # the same process, still without Redis: the per-process counter does stop a flood
        flood = [c.get("/api/v1/me/devices", headers=h).status_code for _ in range(PER_MINUTE)]
        assert flood.count(429) >= 1

        rds.start()
        with caplog.at_level(logging.WARNING, logger="powermeter.ratelimit"):
            _wait_until_redis_used_again(c, key)
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert c.get("/healthz").status_code == 200
        # shared counting again: the restarted (empty) Redis counts this key from zero
        again = c.post("/calc/api/cost", json=COST)
        assert again.status_code == 200
        assert again.headers["RateLimit-Remaining"] == str(PER_MINUTE - 1)
        assert any(probe.scan_iter(f"{settings.ratelimit_prefix}*"))
        assert "powermeter_ratelimit_redis_up 1" in c.get("/metrics").text

        # every 200 answered before and during the outage is stored
        with app.state.pm.db.connect() as conn:
            stored = set(conn.execute(sa.select(receipts.c.receipt_id)).scalars())
        assert {before_id} | {r.json()["data"]["receipt_id"] for r in answers[:3]} == stored
    probe.close()
    app.state.pm.db.dispose()


@needs_redis_server
def test_redis_down_fails_closed_with_503_in_each_family_shape_when_asked(
    settings: Settings,
    make_key: MakeKey,
    rds: ThrowawayRedis,
) -> None:
    app = create_app(_settings(settings, rds, ratelimit_fail_closed=True))
    key = make_key(scopes=["devices:read", "report:write"])
    h = {"X-API-Key": key}
    with TestClient(app) as c:
        assert c.get("/api/v1/me/devices", headers=h).status_code == 200
        rds.kill()
        per_key = c.get("/api/v1/me/devices", headers=h)
        per_ip = c.post("/calc/api/cost", json=COST)
        for r in (per_key, per_ip):
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["error"] == "rate_limit_unavailable"  # the {"error": ...} shape of seeds 001/003
            assert "Redis" in body["message"]
            assert "FAIL_CLOSED" in body["message"]
            assert int(r.headers["Retry-After"]) >= 1
            assert body["retry_after"] == int(r.headers["Retry-After"])
        # no per-minute limit on /v1/*: the daily quota (database) answers as usual
        rep = c.post(
            "/v1/report",
            headers=h,
            json={"job_id": "j", "duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": "US"},
        )
        assert rep.status_code == 200
        assert "fail closed" in c.get("/healthz").json()["checks"]["redis"]
        page = c.get("/dashboard/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        login = c.post(
            "/dashboard/login",
            data={
                "csrf_token": token.group(1),
                "email": "x@example.com",
                "password": "wrong password",
                "next": "/dashboard/",
            },
        )
        assert login.status_code == 503  # the brute-force limit cannot be checked: a page saying so
        assert login.headers["content-type"].startswith("text/html")
        assert 'powermeter_ratelimit_degraded_total{limit="key"} 1' in c.get("/metrics").text

        rds.start()
        _wait_until_redis_used_again(c, key)
        assert c.get("/api/v1/me/devices", headers=h).status_code == 200
        assert c.post("/calc/api/cost", json=COST).status_code == 200
    app.state.pm.db.dispose()


@needs_redis_server
def test_dashboard_login_limit_fails_open_too(settings: Settings, rds: ThrowawayRedis) -> None:
    """The other Redis use (log-in and sign-up brute-force limits) never turns an outage into a 500."""
    app = create_app(_settings(settings, rds))
    with TestClient(app) as c:
        rds.kill()
        page = c.get("/dashboard/login")
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        r = c.post(
            "/dashboard/login",
            data={
                "csrf_token": token.group(1),
                "email": "x@example.com",
                "password": "wrong password",
                "next": "/dashboard/",
            },
        )
        assert r.status_code == 401  # the wrong password, not a 500
    app.state.pm.db.dispose()


class _BlackHole:
    """A TCP port that accepts connections and never answers (a hung Redis); counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for s in self.accepted:
            s.close()


def test_a_hung_redis_is_not_asked_again_until_the_back_off_ends() -> None:
    """Redis that accepts but never answers: the first call gives up after the socket timeout, and the
    calls during the back-off do not touch Redis at all (so they do not wait)."""
    hole = _BlackHole()
    try:
        limiter = RateLimiter(f"redis://127.0.0.1:{hole.port}/0", key_prefix="pm-blackhole")
        kwargs = limiter.storage.storage.connection_pool.connection_kwargs  # type: ignore[attr-defined]
        assert kwargs["socket_connect_timeout"] == ratelimit.REDIS_CONNECT_TIMEOUT_S <= 0.05
        assert kwargs["socket_timeout"] == ratelimit.REDIS_SOCKET_TIMEOUT_S
        results = [limiter.hit("5/minute", "key", "abc") for _ in range(50)]
        assert limiter.redis_down
        assert [r.allowed for r in results] == [True] * 5 + [False] * 45  # counted per process
        assert len(hole.accepted) == 1, "every call waited on the hung Redis"
        assert limiter.degraded["key"] == 50
    finally:
        hole.close()
