"""Compiled routes (infra/fastpath.py) answer exactly as FastAPI's ordinary stack does.

Every case is sent to two apps built from the same settings but for ``compiled_routes``; the answers
must agree on status, error body and headers, and on every number of a success (ids and times aside).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.accounts.service import ALL_SCOPES
from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.conftest import START, fresh_pg_schema

INFERENCE = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300}
JOB = {"duration_minutes": 120, "cpu_cores": 8, "memory_gb": 32, "gpu_cores": 2, "geo_iso": "US"}
ROUTE = {"source_region": "us-west1", "payload_size": 128, "candidates": ["CAISO", "BPA", "ERCOT"]}
CALC = {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}}
VOLATILE = {"receipt_id", "id", "record_id", "timestamp", "issued_at", "created_at", "request_id"}
VOLATILE |= {"account_id", "key_id", "masked_key", "key"}


class Side:
    def __init__(self, client: TestClient, key: str, narrow_key: str) -> None:
        self.client = client
        self.key = key
        self.narrow_key = narrow_key
        self.app: Any = client.app


@pytest.fixture
def second_database_url(tmp_path: Path, database_url: str) -> Iterator[str]:
    """A second empty database on the same backend as ``database_url`` (PostgreSQL: another schema)."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'ordinary.db'}"
        return
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def sides(tmp_path: Path, settings: Settings, second_database_url: str) -> Iterator[tuple[Side, Side]]:
    """The same service twice, on the same kind of database: compiled routes on, then off."""
    made: list[Side] = []
    clients: list[TestClient] = []
    for compiled, url in ((True, settings.database_url), (False, second_database_url)):
        s = settings.model_copy(
            update={
                "compiled_routes": compiled,
                "data_dir": tmp_path / f"data-{compiled}",
                "database_url": url,
                "ratelimit_prefix": f"{settings.ratelimit_prefix}-{compiled}",
            }
        )
        app = create_app(s, clock=FrozenClock(START))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        st = app.state.pm
        svc = accounts_for(s)
        with st.db.begin() as conn:
            acct = svc.create_account(conn, "same@example.com", START, plan="scale")
            key = svc.create_key(conn, acct, "k", START, sorted(ALL_SCOPES)).key
            narrow = svc.create_key(conn, acct, "narrow", START, ["history:read"]).key
        made.append(Side(client, key, narrow))
    yield made[0], made[1]
    for c in clients:
        c.__exit__(None, None, None)
        c.app.state.pm.db.dispose()  # type: ignore[attr-defined]


def _strip(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: ("<volatile>" if k in VOLATILE else _strip(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def _send(side: Side, method: str, path: str, body: Any, headers: dict[str, str], key: str | None) -> Any:
    h = dict(headers)
    if key == "main":
        h["Authorization"] = f"Bearer {side.key}"
    elif key == "narrow":
        h["Authorization"] = f"Bearer {side.narrow_key}"
    elif key is not None:
        h["Authorization"] = key
    if isinstance(body, bytes):
        return side.client.request(method, path, content=body, headers=h)
    if body is None:
        return side.client.request(method, path, headers=h)
    return side.client.request(method, path, json=body, headers=h)


CASES: list[tuple[str, str, str, Any, dict[str, str], str | None]] = [
    ("inference ok", "POST", "/v1/inference", INFERENCE, {}, "main"),
    ("inference bad json", "POST", "/v1/inference", b'{"provider": ', {"Content-Type": "application/json"}, "main"),
    ("inference missing field", "POST", "/v1/inference", {"provider": "OpenAI"}, {}, "main"),
    ("inference negative tokens", "POST", "/v1/inference", {**INFERENCE, "prompt_tokens": -1}, {}, "main"),
    ("inference unknown model", "POST", "/v1/inference", {**INFERENCE, "model": "no-such-model-x"}, {}, "main"),
    ("inference no key", "POST", "/v1/inference", INFERENCE, {}, None),
    ("inference bad json and no key", "POST", "/v1/inference", b"{", {"Content-Type": "application/json"}, None),
    ("inference malformed key", "POST", "/v1/inference", INFERENCE, {}, "Bearer pm_live_nope"),
    ("inference wrong scope", "POST", "/v1/inference", INFERENCE, {}, "narrow"),
    ("inference text body", "POST", "/v1/inference", b"provider=OpenAI", {"Content-Type": "text/plain"}, "main"),
    ("report ok", "POST", "/v1/report", {"job_id": "j-1", **JOB}, {}, "main"),
    ("report bad geo", "POST", "/v1/report", {"job_id": "j-2", **JOB, "cpu_cores": "many"}, {}, "main"),
    ("route ok", "POST", "/route", ROUTE, {}, "main"),
    ("route empty", "POST", "/route", {}, {}, "main"),
    ("route wrong scope", "POST", "/route", ROUTE, {}, "narrow"),
    ("calc ok", "POST", "/calc/api/cost", CALC, {}, None),
    ("calc bad", "POST", "/calc/api/cost", {"device": {"watts": -1}}, {}, None),
    ("calc not json", "POST", "/calc/api/cost", b"nope", {"Content-Type": "application/json"}, None),
    ("me ok", "GET", "/v1/me", None, {}, "main"),
    ("me no key", "GET", "/v1/me", None, {}, None),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "headers", "key"), CASES, ids=[c[0] for c in CASES])
def test_compiled_and_ordinary_answers_agree(
    sides: tuple[Side, Side], name: str, method: str, path: str, body: Any, headers: dict[str, str], key: str | None
) -> None:
    fast, ordinary = sides
    a = _send(fast, method, path, body, headers, key)
    b = _send(ordinary, method, path, body, headers, key)
    assert a.status_code == b.status_code, (name, a.text, b.text)
    if name.endswith(" ok"):
        assert a.status_code == 200, a.text
    assert _strip(a.json()) == _strip(b.json()), name
    skip = {"date", "x-request-id", "content-length"}
    assert {k for k in a.headers if k not in skip} == {k for k in b.headers if k not in skip}, name
    for h in ("content-type", "ratelimit-limit", "ratelimit-remaining", "ratelimit-policy", "www-authenticate"):
        assert a.headers.get(h) == b.headers.get(h), (name, h)
    assert a.headers["x-request-id"]
    assert b.headers["x-request-id"]
    assert ordinary.app.fastpath is None


def test_hot_routes_take_the_compiled_path_and_are_observed(sides: tuple[Side, Side]) -> None:
    fast, _ = sides
    table = fast.app.fastpath.table
    for route in (("POST", "/v1/inference"), ("POST", "/v1/report"), ("POST", "/route"), ("POST", "/calc/api/cost")):
        assert route in table, route
    assert ("GET", "/v1/me") in table
    before = fast.app.fastpath.served
    r = _send(fast, "POST", "/v1/inference", INFERENCE, {"X-Request-Id": "trace-123"}, "main")
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "trace-123"
    assert fast.app.fastpath.served == before + 1
    for _ in range(3):
        assert _send(fast, "GET", "/v1/me", None, {}, "main").status_code == 200
    metrics = fast.client.get("/metrics").text
    assert 'powermeter_http_requests_total{method="POST",route="/v1/inference",status="200"} 1' in metrics
    assert 'powermeter_http_requests_total{method="GET",route="/v1/me",status="200"} 3' in metrics
    # a refusal the ordinary stack rendered is counted once, under the route's template too
    assert _send(fast, "POST", "/v1/inference", {"provider": "x"}, {}, "main").status_code == 400
    metrics = fast.client.get("/metrics").text
    assert 'powermeter_http_requests_total{method="POST",route="/v1/inference",status="400"} 1' in metrics
    assert 'route="/v1/inference",status="500"' not in metrics  # counted by the stack that answered, once


def test_request_log_line_is_the_same(sides: tuple[Side, Side], caplog: pytest.LogCaptureFixture) -> None:
    fast, ordinary = sides
    lines = []
    for side in (fast, ordinary):
        side.app.fastpath and setattr(side.app.fastpath, "log_requests", True)
        for m in side.app.user_middleware:
            if "log_requests" in m.kwargs:
                m.kwargs["log_requests"] = True
        side.app.middleware_stack = None  # rebuilt with the log switched on
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="powermeter.request"):
            assert _send(side, "POST", "/route", ROUTE, {"X-Request-Id": "r-1"}, "main").status_code == 200
        got = [r.getMessage() for r in caplog.records if r.name == "powermeter.request"]
        assert len(got) == 1
        lines.append(got[0])
    import json

    a, b = (json.loads(x) for x in lines)
    a.pop("duration_ms"), b.pop("duration_ms")
    assert a == b
    assert (a["route"], a["status"], a["request_id"]) == ("/route", 200, "r-1")


def test_idempotent_retry_goes_the_ordinary_way_and_replays(sides: tuple[Side, Side]) -> None:
    fast, _ = sides
    headers = {"Idempotency-Key": "once-1"}
    first = _send(fast, "POST", "/v1/inference", INFERENCE, headers, "main")
    again = _send(fast, "POST", "/v1/inference", INFERENCE, headers, "main")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # the same stored record, not a second one
    history = fast.client.get("/v1/inference/history", headers={"Authorization": f"Bearer {fast.key}"}).json()
    assert history["pagination"]["totalElements"] == 1
    assert [r["id"] for r in history["data"]] == [first.json()["id"]]


def test_dependency_overrides_and_late_middlewares_disable_the_compiled_path(sides: tuple[Side, Side]) -> None:
    fast, _ = sides
    seen: list[str] = []

    class Spy:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.app(scope, receive, send)

    fast.app.middleware_stack = None
    fast.app.user_middleware.insert(0, __import__("starlette.middleware", fromlist=["Middleware"]).Middleware(Spy))
    before = fast.app.fastpath.served
    assert _send(fast, "GET", "/v1/me", None, {}, "main").status_code == 200
    assert seen == ["/v1/me"]  # the late middleware saw the request
    assert fast.app.fastpath.served == before
