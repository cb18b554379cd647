"""Idempotency-Key hardening (issue 14, items 2-5): scope by key id after authentication, no replay of
limits or auth refusals, claims of dead holders taken over, bodies limited and read only after
authentication."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db.idempotency import idempotency_keys
from powermeter.infra.state import AppState
from powermeter.jobs.schemas import MAX_BATCH_JOBS
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.conftest import PG_URL, MakeKey
from tests.integration.accounts.test_limits_and_errors import _settings_with_plan, _work_routes
from tests.live import POWERMETER, create_key, free_port, server_env


def _claims(state: AppState) -> list[Any]:
    with state.db.begin() as conn:
        return list(conn.execute(sa.select(idempotency_keys)).all())


def test_the_same_key_sent_four_ways_runs_the_work_once(app: FastAPI, client: TestClient, api_key: str) -> None:
    _work_routes(app)
    body = {"kwh": 1, "label": "once"}
    ways = [
        {"X-API-Key": api_key},
        {"Authorization": f"Bearer {api_key}"},
        {"Authorization": f"bearer {api_key}"},
        {"Authorization": f"Bearer  {api_key}"},
    ]
    replies = [client.post("/v1/test/work", json=body, headers={**h, "Idempotency-Key": "k4"}) for h in ways]
    assert [r.status_code for r in replies] == [200] * 4
    assert len({r.json()["data"]["nonce"] for r in replies}) == 1  # the route ran once
    assert [r.headers.get("Idempotent-Replayed") for r in replies] == [None, "true", "true", "true"]
    scopes = {c.scope for c in _claims(app.state.pm)}
    assert len(scopes) == 1
    assert next(iter(scopes)).startswith("key:key_")


def test_a_429_is_not_replayed_after_the_limit_resets(settings: Settings, clock: FrozenClock) -> None:
    s = _settings_with_plan(settings, daily_calls=1)
    app = create_app(s, clock=clock)
    _work_routes(app)
    with TestClient(app) as c:
        st: AppState = app.state.pm
        with st.db.begin() as conn:
            acct = accounts_for(s).create_account(conn, "q@example.com", clock.now())
            key = accounts_for(s).create_key(conn, acct, "k", clock.now()).key
        h = {"X-API-Key": key}
        assert c.post("/v1/test/work", json={"kwh": 0, "label": "a"}, headers=h).status_code == 200
        keyed = {**h, "Idempotency-Key": "after-limit"}
        r = c.post("/v1/test/work", json={"kwh": 0, "label": "b"}, headers=keyed)
        assert r.status_code == 429
        assert _claims(st) == []  # the refusal released the claim
        clock.advance(timedelta(days=1))
        r = c.post("/v1/test/work", json={"kwh": 0, "label": "b"}, headers=keyed)
        assert r.status_code == 200, r.text
        assert "Idempotent-Replayed" not in r.headers
    st.db.dispose()


def test_validation_400_is_replayed_but_403_is_not(app: FastAPI, client: TestClient, make_key: MakeKey) -> None:
    _work_routes(app)
    narrow = make_key(scopes=["routing"])
    h = {"X-API-Key": narrow, "Idempotency-Key": "scope"}
    assert client.post("/v1/test/work", json={"kwh": 0, "label": "x"}, headers=h).status_code == 403
    assert _claims(app.state.pm) == []
    full = make_key()
    h = {"X-API-Key": full, "Idempotency-Key": "bad-body"}
    first = client.post("/v1/test/work", json={"kwh": -1, "label": "x"}, headers=h)
    again = client.post("/v1/test/work", json={"kwh": -1, "label": "x"}, headers=h)
    assert first.status_code == again.status_code == 400
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_revoked_key_gets_no_replay(
    app: FastAPI, client: TestClient, state: AppState, api_key: str, clock: FrozenClock
) -> None:
    _work_routes(app)
    h = {"X-API-Key": api_key, "Idempotency-Key": "before-revoke"}
    assert client.post("/v1/test/work", json={"kwh": 0, "label": "a"}, headers=h).status_code == 200
    with state.db.begin() as conn:
        row = conn.execute(sa.text("SELECT id FROM api_keys")).first()
        assert row is not None
        accounts_for(state.settings).revoke_key(conn, row[0], clock.now())
    r = client.post("/v1/test/work", json={"kwh": 0, "label": "a"}, headers=h)
    assert r.status_code == 401
    assert "Idempotent-Replayed" not in r.headers
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def _insert_claim(
    state: AppState, scope: str, key: str, body: bytes, path: str, owner: str, lease_until: datetime
) -> None:
    import hashlib

    fingerprint = hashlib.sha256(b"POST " + path.encode() + b"?\n" + body).hexdigest()
    with state.db.begin() as conn:
        conn.execute(
            idempotency_keys.insert().values(
                scope=scope,
                key=key,
                request_hash=fingerprint,
                created_at=state.clock.now(),
                owner=owner,
                lease_until=lease_until,
            )
        )


def test_a_claim_whose_holder_stopped_renewing_is_taken_over(
    app: FastAPI, client: TestClient, state: AppState, api_key: str, clock: FrozenClock
) -> None:
    _work_routes(app)
    body = json.dumps({"kwh": 0, "label": "x"}).encode()
    with state.db.begin() as conn:
        key_id = conn.execute(sa.text("SELECT id FROM api_keys")).scalar_one()
    # held by a process of another machine, lease still running: the retry waits
    _insert_claim(
        state,
        f"key:{key_id}",
        "held",
        body,
        "/v1/test/work",
        "other-host:4242:abcd",
        clock.now() + timedelta(seconds=20),
    )
    h = {"X-API-Key": api_key, "Idempotency-Key": "held", "Content-Type": "application/json"}
    r = client.post("/v1/test/work", content=body, headers=h)
    assert r.status_code == 409
    assert r.json()["error_code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert r.headers["Retry-After"] == "20"
    clock.advance(timedelta(seconds=21))  # the holder stopped renewing its lease: it died
    r = client.post("/v1/test/work", content=body, headers=h)
    assert r.status_code == 200, r.text
    r2 = client.post("/v1/test/work", content=body, headers=h)
    assert r2.headers["Idempotent-Replayed"] == "true"


def test_a_claim_of_a_dead_local_process_is_taken_over_at_once(
    app: FastAPI, client: TestClient, state: AppState, api_key: str, clock: FrozenClock
) -> None:
    from powermeter.infra.idempotency import HOST

    _work_routes(app)
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(proc.stdout)
    body = json.dumps({"kwh": 0, "label": "y"}).encode()
    with state.db.begin() as conn:
        key_id = conn.execute(sa.text("SELECT id FROM api_keys")).scalar_one()
    _insert_claim(
        state,
        f"key:{key_id}",
        "dead",
        body,
        "/v1/test/work",
        f"{HOST}:{dead_pid}:feed",
        clock.now() + timedelta(seconds=30),
    )
    h = {"X-API-Key": api_key, "Idempotency-Key": "dead", "Content-Type": "application/json"}
    r = client.post("/v1/test/work", content=body, headers=h)
    assert r.status_code == 200, r.text


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is not None, reason="reads the server's SQLite file")
def test_kill_9_during_a_keyed_batch_does_not_block_the_retry(tmp_path: Path) -> None:
    db = tmp_path / "pm.db"
    env = server_env(tmp_path, f"sqlite:///{db}")
    key = create_key(env)
    jobs = [{"job_id": f"k{i}", "duration_minutes": 1, "cpu_cores": 1, "geo_iso": "SE"} for i in range(10_000)]
    payload = json.dumps({"jobs": jobs}).encode()
    h = {"X-API-Key": key, "Idempotency-Key": "crash-1", "Content-Type": "application/json"}

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = subprocess.Popen(
            [*POWERMETER, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                time.sleep(0.2)
        proc.kill()
        raise AssertionError("server did not start")

    killed = False
    for _attempt in range(5):  # the kill must land while the claim is pending
        proc, base = start()
        threading.Thread(target=lambda b=base: _post_quietly(b, payload, h), daemon=True).start()
        pending = False
        deadline = time.time() + 20
        while time.time() < deadline and not pending:
            with sqlite3.connect(db, timeout=5) as conn:
                row = conn.execute("SELECT status_code FROM idempotency_keys WHERE key = 'crash-1'").fetchone()
            if row is not None and row[0] is None:
                pending = True
            elif row is not None:
                break  # finished before the kill: try again with a new key
            time.sleep(0.005)
        if pending:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
            break
        proc.kill()
        proc.wait()
        h["Idempotency-Key"] = f"crash-{uuid.uuid4().hex[:6]}"
    assert killed, "could not kill the server while the claim was pending"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status_code FROM idempotency_keys").fetchall() == [(None,)]
    proc, base = start()
    try:
        r = httpx.post(base + "/v1/batch", content=payload, headers=h, timeout=60)
        assert r.status_code == 200, r.text[:300]  # the work ran (it was rolled back by the crash)
        assert r.json()["data"]["total_jobs"] == 10_000
        again = httpx.post(base + "/v1/batch", content=payload, headers=h, timeout=60)
        assert again.headers["Idempotent-Replayed"] == "true"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _post_quietly(base: str, payload: bytes, headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(base + "/v1/batch", content=payload, headers=headers, timeout=60)


def _asgi(client: TestClient, app: FastAPI, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, bool]:
    """Call the app directly with a ``receive`` that records whether the body was ever asked for."""
    asked = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked = True
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "app": app,
        "state": {},
    }

    async def call() -> None:
        await app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(call)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, asked


def test_unauthenticated_keyed_big_body_is_refused_before_it_is_read(
    app: FastAPI, client: TestClient, state: AppState
) -> None:
    status, body, asked = _asgi(
        client,
        app,
        "POST",
        "/v1/batch",
        {"Idempotency-Key": "x", "Content-Length": str(10 << 20), "Content-Type": "application/json"},
    )
    assert status == 401
    assert not asked
    assert json.loads(body)["error_code"] == "INVALID_API_KEY"
    status, _, asked = _asgi(
        client,
        app,
        "POST",
        "/v1/batch",
        {"Authorization": "Bearer pm_live_not_a_real_key", "Content-Length": str(10 << 20)},
    )
    assert status == 401
    assert not asked
    assert _claims(state) == []


def test_bodies_over_the_limit_are_413_before_reading(
    app: FastAPI, client: TestClient, state: AppState, api_key: str
) -> None:
    s = state.settings
    h = {"X-API-Key": api_key, "Idempotency-Key": "huge"}
    status, body, asked = _asgi(
        client, app, "POST", "/v1/batch", {**h, "Content-Length": str(s.max_batch_body_bytes + 1)}
    )
    assert status == 413
    assert not asked
    doc = json.loads(body)
    assert doc["error_code"] == "PAYLOAD_TOO_LARGE"
    assert doc["limit_bytes"] == s.max_batch_body_bytes
    status, body, asked = _asgi(client, app, "POST", "/calc/api/cost", {"Content-Length": str(s.max_body_bytes + 1)})
    assert status == 413
    assert not asked
    assert json.loads(body)["error"] == "payload_too_large"

    # a body sent without a length is counted as it arrives
    def chunks() -> Any:
        for _ in range(s.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = client.post("/calc/api/cost", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"
    assert _claims(state) == []


def test_a_ten_thousand_job_batch_with_every_field_at_its_maximum_fits_the_limit(state: AppState) -> None:
    job = {
        "job_id": "j" * 128,
        "duration_minutes": 525_960.123456789,
        "cpu_cores": 999_999.123456789,
        "memory_gb": 99_999_999.12345678,
        "gpu_cores": 999_999.123456789,
        "geo_iso": "g" * 64,
        "cpu_model": "c" * 128,
        "gpu_model": "g" * 128,
        "cpu_utilization": 0.123456789012345,
        "gpu_utilization": 0.123456789012345,
        "pue": 1.23456789012345,
        "provider": "p" * 32,
        "region": "r" * 64,
    }
    body = json.dumps({"jobs": [job] * MAX_BATCH_JOBS}, indent=1)  # pretty-printed, one space per level
    assert len(body.encode()) <= state.settings.max_batch_body_bytes
    assert len(json.dumps(job).encode()) * 2 > state.settings.max_body_bytes / MAX_BATCH_JOBS  # /v1/batch needs more
