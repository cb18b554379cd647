"""Hot rows written once per group commit (SQLite): quotas stay exact, the audit chain stays whole,
a refused or failed request leaves no trace, and every other unit sees the database as it is.

``POST /v1/report`` and ``POST /v1/inference`` run in ``hot_rows`` units: inside a SQLite batch the usage
counters and the audit chain head are kept in memory and written once, just before the COMMIT
(``infra/db/unit_of_work.py``). These tests send many requests at once through the app's own event loop,
so they share batches. On PostgreSQL (``POWERMETER_TEST_DATABASE_URL``) the same API tests run against the
PostgreSQL units, where ``hot_rows`` changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.accounts import repository as account_repo
from powermeter.accounts import service as accounts
from powermeter.app import create_app
from powermeter.audit import repository as audit_repo
from powermeter.audit import service as audit
from powermeter.audit.tables import audit_entries
from powermeter.inference import repository as inference_repo
from powermeter.inference.tables import inference_records
from powermeter.infra import state as state_mod
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db import unit_of_work
from powermeter.infra.db.faults import UNIQUE_VIOLATIONS
from powermeter.infra.errors import Unauthorized
from powermeter.infra.security import hash_api_key
from powermeter.settings import Settings
from tests.accounts import accounts_for

INFERENCE = {"provider": "openai", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300}


def _app(settings: Settings, clock: FrozenClock, **plan: Any) -> FastAPI:
    plans = {"dev": {"daily_calls": 1000, "daily_kwh": 50.0, **plan}}
    return create_app(settings.model_copy(update={"plans_json": json.dumps(plans)}), clock=clock)


def _key(app: FastAPI, clock: FrozenClock, email: str = "hot@example.com") -> tuple[str, str]:
    st: state_mod.AppState = app.state.pm
    with st.db.begin() as conn:
        acct = accounts_for(st.settings).create_account(conn, email, clock.now())
        key = accounts_for(st.settings).create_key(conn, acct, "k", clock.now()).key
    return acct, key


def _burst(client: TestClient, app: FastAPI, requests: list[tuple[str, dict[str, Any]]], key: str) -> list[Any]:
    """Send every request at once on the app's own event loop (they share group commits)."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {key}"}
        ) as c:
            return await asyncio.gather(*(c.post(path, json=body) for path, body in requests))

    assert client.portal is not None
    return client.portal.call(run)


def _verify_chain(app: FastAPI, account_id: str) -> audit.ChainReport:
    st: state_mod.AppState = app.state.pm
    with st.db.connect() as conn:
        return audit.verify_account(conn, account_id, [audit.PublicKey.of(st.signer)])


def test_a_concurrent_burst_gets_exactly_the_daily_quota(settings: Settings, clock: FrozenClock) -> None:
    app = _app(settings, clock, daily_calls=25)
    acct, key = _key(app, clock)
    with TestClient(app) as client:
        responses = _burst(client, app, [("/v1/inference", INFERENCE)] * 60, key)
        codes = [r.status_code for r in responses]
        assert codes.count(200) == 25, [r.text for r in responses if r.status_code not in (200, 429)][:2]
        assert codes.count(429) == 35
        remaining = sorted(int(r.headers["RateLimit-Remaining"]) for r in responses if r.status_code == 200)
        if _grouped(app):  # each accepted call saw its own place in the quota: 24, 23, … 0 remaining, once each
            assert remaining == list(range(25))
        else:  # PostgreSQL without Redis: read when the request starts, so concurrent calls may see the same
            assert all(0 <= n < 25 for n in remaining)
        h = {"Authorization": f"Bearer {key}"}
        # the quota is spent: the next counted call of the day is refused too
        assert client.get("/v1/api-keys/stats", headers=h).status_code == 429
    with app.state.pm.db.connect() as conn:
        assert account_repo.get_usage(conn, acct, "calls", accounts.day_period(clock.now())) == 25
        stored_ids = {str(r[0]) for r in conn.execute(sa.select(inference_records.c.id))}
        assert len(stored_ids) == 25
    report = _verify_chain(app, acct)
    assert report.ok, report.first_break
    _assert_every_record_signed_once(app, acct, stored_ids)
    app.state.pm.db.dispose()


def _grouped(app: FastAPI) -> bool:
    """Whether requests are committed in batches (SQLite; PostgreSQL lanes, with Redis)."""
    return not isinstance(app.state.pm.db.units, unit_of_work.ConcurrentTransactions)


def _assert_every_record_signed_once(app: FastAPI, account_id: str, stored: set[str]) -> None:
    """Each stored record is a leaf of exactly one anchored tree (a batch's: fewer anchors than records), its
    rebuilt leaf hashes to the signed one, and no refused request left a leaf (the report's ledger)."""
    from powermeter.audit.anchors import iter_anchors
    from powermeter.reports import ledger

    with app.state.pm.db.connect() as conn:
        anchors = [a for a in iter_anchors(conn, account_id) if a.kind.startswith("inference_")]
        built = ledger.collect(conn, account_id, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        grouped = _grouped(app)
    leaves = [
        rid
        for a in anchors
        for rid in (a.details["record_ids"] if a.kind == "inference_tree" else [a.details["record_id"]])
    ]
    assert sorted(leaves) == sorted(stored)
    if grouped:  # signed once per group commit, not once per record (else: a one-leaf tree each)
        assert {a.kind for a in anchors} == {"inference_tree"}
        assert 1 <= len(anchors) < len(stored)
    assert built.problems == []
    assert sorted(r.id for r in built.records if r.kind == "inference" and r.status == "ok") == sorted(stored)


def test_the_kwh_cap_holds_under_a_burst_and_failed_requests_leave_nothing(
    settings: Settings, clock: FrozenClock
) -> None:
    app = _app(settings, clock)  # 50 kWh/day
    acct, key = _key(app, clock)
    # 1000 cores × 12 W at PUE 1 for 10 min = 2 kWh; every third job names an unknown location (400)
    jobs = [
        (
            "/v1/report",
            {
                "job_id": f"j{i}",
                "duration_minutes": 10,
                "cpu_cores": 1000,
                "pue": 1.0,
                "geo_iso": "XX-NOWHERE" if i % 3 == 0 else "US",
            },
        )
        for i in range(60)
    ]
    with TestClient(app) as client:
        responses = _burst(client, app, jobs, key)
        codes = [r.status_code for r in responses]
        assert codes.count(400) == 20
        assert codes.count(200) == 25  # 25 × 2 kWh = the 50 kWh cap, exactly
        assert codes.count(429) == 15
        assert all(r.json()["error_code"] == "USAGE_CAP_EXCEEDED" for r in responses if r.status_code == 429)
        h = {"Authorization": f"Bearer {key}"}
        receipts = client.get("/v1/receipts?limit=1000", headers=h).json()["data"]
        assert receipts["total"] == 25
        stats = client.get("/v1/api-keys/stats", headers=h).json()["data"]
        assert stats["daily_usage_kwh"] == pytest.approx(50.0)
        # refused requests roll back with their call (400s and the cap's 429s alike); the two reads count
        assert stats["daily_api_calls"] == 25 + 2
    report = _verify_chain(app, acct)
    assert report.ok, report.first_break
    app.state.pm.db.dispose()


def test_other_units_in_the_same_batch_see_the_hot_rows_and_failed_ones_leave_none(
    app: FastAPI, client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit level, deterministic: three units in one SQLite batch (the batch may not commit early)."""
    st: state_mod.AppState = app.state.pm
    if not st.db.is_sqlite:
        pytest.skip("hot rows are SQLite's group commit (PostgreSQL defers them per lane)")
    monkeypatch.setattr(unit_of_work, "MAX_BATCH_AGE_S", 30.0)
    acct, _key_text = _key(app, clock)
    now = clock.now()
    with st.db.connect() as conn:
        principal = accounts.Principal(
            account_id=acct,
            email="hot@example.com",
            plan=st.settings.plan("dev"),
            key_id="none",
            key_name="k",
            masked_key="pm_…",
            scopes=frozenset(),
        )
        head_before = audit_repo.get_head(conn, acct)
    seq_before = head_before.seq if head_before is not None else 0
    day = accounts.day_period(now)
    units = st.db.units
    assert isinstance(units, unit_of_work.SQLiteGroupCommit)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        gate = asyncio.Event()

        async def kept() -> None:
            async with units.unit(True) as conn:
                accounts.count_daily_call(conn, principal, now)
                audit.append(conn, account_id=acct, action_type="VIEW", now=now)
                seen["batch"] = units._batch
                gate.set()
                await asyncio.sleep(0.05)  # the two others queue behind: the batch stays open

        async def failed() -> None:
            await gate.wait()
            try:
                async with units.unit(True) as conn:
                    accounts.count_daily_call(conn, principal, now)
                    audit.append(conn, account_id=acct, action_type="VIEW", now=now)
                    raise RuntimeError("the request fails after counting and appending")
            except RuntimeError:
                seen["failed"] = True

        async def reader() -> None:
            await gate.wait()
            await asyncio.sleep(0)
            async with units.unit() as conn:  # an ordinary unit: reads the database as it is
                assert units._batch is seen["batch"], "the scenario needs one batch"
                seen["calls"] = account_repo.get_usage(conn, acct, "calls", day)
                head = audit_repo.get_head(conn, acct)
                seen["seq"] = head.seq if head is not None else 0
                # the kept request's entry row is written before this unit runs, with the head that names it
                seen["entries"] = conn.execute(
                    sa.select(sa.func.max(audit_entries.c.seq), sa.func.count()).where(
                        audit_entries.c.account_id == acct
                    )
                ).one()

        await asyncio.gather(kept(), failed(), reader())

    assert client.portal is not None
    client.portal.call(scenario)
    # the ordinary unit saw the kept request's counter and head, not the failed one's
    assert seen["failed"]
    assert seen["calls"] == 1
    assert seen["seq"] == seq_before + 1
    assert tuple(seen["entries"]) == (seq_before + 1, seq_before + 1)
    with st.db.connect() as conn:
        assert account_repo.get_usage(conn, acct, "calls", day) == 1
        head = audit_repo.get_head(conn, acct)
        assert head is not None
        assert head.seq == seq_before + 1
    report = _verify_chain(app, acct)
    assert report.ok, report.first_break
    assert report.head_seq == seq_before + 1


def test_the_daily_rollup_is_bit_for_bit_the_sum_of_its_records(settings: Settings, clock: FrozenClock) -> None:
    """The rollup summed in memory over a batch equals the sum of the stored records, added in order."""
    app = _app(settings, clock)
    acct, key = _key(app, clock)
    bodies = [
        {**INFERENCE, "prompt_tokens": 100 + 37 * i, "completion_tokens": 1 + 13 * i, "model": m}
        for i in range(40)
        for m in ("gpt-4o", "gpt-4o-mini")
    ]
    with TestClient(app) as client:
        responses = _burst(client, app, [("/v1/inference", b) for b in bodies], key)
        assert [r.status_code for r in responses] == [200] * len(bodies)
    t = inference_records
    sums = ("energy_wh", "co2_grams", "water_ml", "tree_days")
    with app.state.pm.db.connect() as conn:
        records = conn.execute(
            sa.select(t.c.model_id, t.c.input_tokens, t.c.output_tokens, *(t.c[k] for k in sums))
            .where(t.c.account_id == acct)
            .order_by(t.c.seq)
        ).all()
        daily = {
            r.model_id: r
            for r in conn.execute(
                sa.text(
                    "SELECT model_id, requests, input_tokens, output_tokens, energy_wh, co2_grams, water_ml, "
                    "tree_days FROM inference_daily WHERE account_id = :a"
                ),
                {"a": acct},
            )
        }
    assert len(daily) == 2
    for model_id, rollup in daily.items():
        mine = [r for r in records if r.model_id == model_id]
        assert rollup.requests == len(mine) == 40
        assert rollup.input_tokens == sum(r.input_tokens for r in mine)
        assert rollup.output_tokens == sum(r.output_tokens for r in mine)
        for k in sums:
            total = getattr(mine[0], k)
            for r in mine[1:]:
                total += getattr(r, k)  # the upsert's additions, in the order the records were stored
            if _grouped(app):
                assert getattr(rollup, k) == total, k
            else:  # concurrent transactions (PostgreSQL without Redis) add in commit order, not storage order
                assert math.isclose(getattr(rollup, k), total, rel_tol=1e-12), k
    app.state.pm.db.dispose()


def test_a_key_revoked_mid_batch_is_refused_by_the_next_request_of_the_batch(
    app: FastAPI, client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key row a batch keeps is forgotten by the unit that revokes the key (same batch, deterministic)."""
    st: state_mod.AppState = app.state.pm
    if not st.db.is_sqlite:
        pytest.skip("hot rows are SQLite's group commit")
    monkeypatch.setattr(unit_of_work, "MAX_BATCH_AGE_S", 30.0)
    _acct, key = _key(app, clock, "revoke@example.com")
    key_hash = hash_api_key(key, st.secret)
    now = clock.now()
    units = st.db.units
    assert isinstance(units, unit_of_work.SQLiteGroupCommit)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        gate = asyncio.Event()

        async def first() -> None:
            async with units.unit(True) as conn:
                seen["key_id"] = accounts.authenticate(conn, st.settings, key_hash, now).key_id
                seen["batch"] = units._batch
                gate.set()
                await asyncio.sleep(0.05)  # the others queue behind it: one batch

        async def revoke() -> None:
            await gate.wait()
            async with units.unit() as conn:
                assert units._batch is seen["batch"], "the scenario needs one batch"
                assert account_repo.revoke_key(conn, seen["key_id"], now) == 1

        async def after() -> None:
            await gate.wait()
            await asyncio.sleep(0.01)  # queued after the revocation
            try:
                async with units.unit(True) as conn:
                    assert units._batch is seen["batch"], "the scenario needs one batch"
                    accounts.authenticate(conn, st.settings, key_hash, now)
            except Unauthorized:
                seen["refused"] = True

        await asyncio.gather(first(), revoke(), after())

    assert client.portal is not None
    client.portal.call(scenario)
    assert seen.get("refused"), "a request after the revocation, in the same batch, must be refused"


def _repeated_key_in_one_batch(
    client: TestClient, app: FastAPI, key: str, acct: str, batch_of: Callable[[], Any] | None = None
) -> None:
    """Three units in one batch: two records without an idempotency key (left to the batch), and between
    them one repeating a stored key. The repeated key must fail inside its own unit, and the two others must
    be stored. ``batch_of`` gives the open batch, to check that the three share it."""
    st: state_mod.AppState = app.state.pm
    h = {"Authorization": f"Bearer {key}"}
    keyed = {**INFERENCE, "idempotency_key": "k-1"}
    assert client.post("/v1/inference/batch", headers=h, json={"records": [keyed]}).status_code == 200
    t = inference_records
    with st.db.connect() as conn:
        stored = dict(conn.execute(sa.select(t).where(t.c.idempotency_key == "k-1")).one()._mapping)
    stored.pop("seq")
    units = st.db.units
    seen: dict[str, Any] = {}

    def row(i: int, idempotency_key: str | None) -> dict[str, Any]:
        return {**stored, "id": f"0190a000-0000-7000-8000-{i:012d}", "idempotency_key": idempotency_key}

    async def scenario() -> None:
        gate = asyncio.Event()

        async def plain(i: int) -> None:
            if i:
                await gate.wait()
            async with units.unit(True) as conn:
                inference_repo.insert_record(conn, row(i, None), "{}")
                if batch_of is not None:
                    seen.setdefault("batch", batch_of())
                gate.set()
                await asyncio.sleep(0.02)  # the others queue behind it: one batch

        async def repeated() -> None:
            await gate.wait()
            try:
                async with units.unit(True) as conn:
                    if batch_of is not None:
                        assert batch_of() is seen["batch"], "the scenario needs one batch"
                    try:
                        inference_repo.insert_record(conn, row(9, "k-1"), "{}")
                    except UNIQUE_VIOLATIONS:
                        seen["refused_inside"] = True
                        raise
            except UNIQUE_VIOLATIONS:
                pass

        await asyncio.gather(plain(0), repeated(), plain(1))

    assert client.portal is not None
    client.portal.call(scenario)
    assert seen.get("refused_inside"), "the repeated key must fail inside its own unit"
    with st.db.connect() as conn:
        ids = set(conn.execute(sa.select(t.c.id).where(t.c.account_id == acct)).scalars())
    assert {row(0, None)["id"], row(1, None)["id"]} <= ids
    assert row(9, "k-1")["id"] not in ids


def test_a_repeated_idempotency_key_fails_its_own_request_not_the_batch(
    app: FastAPI, client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records without an idempotency key are written with the batch's others before its COMMIT; a record
    with one is inserted at once, so a repeated key fails in its own unit (its request gets the 409) while
    the batch, and the deferred records of the others, commit (one SQLite batch, deterministic)."""
    st: state_mod.AppState = app.state.pm
    if not st.db.is_sqlite:
        pytest.skip("hot rows are SQLite's group commit")
    monkeypatch.setattr(unit_of_work, "MAX_BATCH_AGE_S", 30.0)
    acct, key = _key(app, clock, "idem@example.com")
    units = st.db.units
    assert isinstance(units, unit_of_work.SQLiteGroupCommit)
    _repeated_key_in_one_batch(client, app, key, acct, batch_of=lambda: units._batch)


def test_in_a_postgresql_lane_a_repeated_key_fails_its_request_and_the_deferred_records_commit(
    settings: Settings, clock: FrozenClock
) -> None:
    """The same in a PostgreSQL + Redis group-commit lane (one lane, so one batch)."""
    if not (settings.database_url.startswith("postgresql") and settings.redis_url):
        pytest.skip("group-commit lanes run on PostgreSQL with Redis")
    app = create_app(settings.model_copy(update={"pg_lanes": 1}), clock=clock)
    acct, key = _key(app, clock, "lane@example.com")
    assert isinstance(app.state.pm.db.units, unit_of_work.PgGroupCommit)
    with TestClient(app) as client:
        _repeated_key_in_one_batch(client, app, key, acct)
    app.state.pm.db.dispose()


def test_lane_threads_serve_requests_and_end_with_the_app(settings: Settings, clock: FrozenClock) -> None:
    """A PostgreSQL lane runs its blocking steps on a thread of its own: requests are served through it, and
    the threads end when the app shuts down (none left behind by a restart)."""
    if not (settings.database_url.startswith("postgresql") and settings.redis_url):
        pytest.skip("group-commit lanes run on PostgreSQL with Redis")

    def lane_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "powermeter-lane" and t.is_alive()}

    before = lane_threads()
    app = _app(settings, clock)
    acct, key = _key(app, clock, "threads@example.com")
    with TestClient(app) as client:
        responses = _burst(client, app, [("/v1/inference", INFERENCE)] * 20, key)
        assert [r.status_code for r in responses] == [200] * 20
        assert lane_threads() - before, "the lanes' steps run on their own threads"
    deadline = time.monotonic() + 5
    while lane_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lane_threads() - before, "a lane thread outlived its app"
    with app.state.pm.db.connect() as conn:
        t = inference_records
        assert conn.execute(sa.select(sa.func.count()).where(t.c.account_id == acct)).scalar_one() == 20
    app.state.pm.db.dispose()
