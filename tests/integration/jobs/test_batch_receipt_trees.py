"""Receipt trees once per group commit (SQLite): the plain reports of one batch and account are the leaves of
one tree, signed and anchored once just before the COMMIT (``jobs.service._record_in_batch_tree``).

The requests go through the app's own event loop at once, so they share a batch (its age limit is lifted,
so the batch closes only when nobody waits). Checked as a user or an auditor would: every receipt's document
verifies with the public key, the audit chain holds one ``TREE_SIGNED`` per tree, the reports' ledger rebuilds
every leaf, a re-report inside the same batch gets the first receipt back (or a 409), and a refused request
leaves no leaf. On PostgreSQL the same API assertions hold (one tree per report there).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.audit import service as audit
from powermeter.audit.anchors import iter_anchors
from powermeter.infra import state as state_mod
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db import unit_of_work
from powermeter.jobs import integrity
from powermeter.jobs import service as jobs_service
from powermeter.jobs.receipts import verify_document
from powermeter.jobs.tables import receipt_trees, receipts
from powermeter.reports import ledger
from powermeter.settings import Settings
from tests.accounts import accounts_for

# 8 cores × 10 W + 16 GB for 60 min in the US: ~0.1 kWh a job
JOB = {"duration_minutes": 60, "cpu_cores": 8, "memory_gb": 16, "geo_iso": "US"}


def _app(settings: Settings, clock: FrozenClock, daily_kwh: float | None = None) -> FastAPI:
    plans = {"dev": {"daily_calls": 10_000, "daily_kwh": daily_kwh}}
    return create_app(settings.model_copy(update={"plans_json": json.dumps(plans)}), clock=clock)


def _key(app: FastAPI, clock: FrozenClock, email: str) -> tuple[str, str]:
    st: state_mod.AppState = app.state.pm
    with st.db.begin() as conn:
        acct = accounts_for(st.settings).create_account(conn, email, clock.now())
        key = accounts_for(st.settings).create_key(conn, acct, "k", clock.now()).key
    return acct, key


def _burst(client: TestClient, app: FastAPI, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """``(key, body)`` pairs, all posted to ``/v1/report`` at once on the app's event loop."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await asyncio.gather(
                *(c.post("/v1/report", json=body, headers={"Authorization": f"Bearer {k}"}) for k, body in requests)
            )

    assert client.portal is not None
    return client.portal.call(run)


def _grouped(app: FastAPI) -> bool:
    return isinstance(app.state.pm.db.units, unit_of_work.SQLiteGroupCommit)


def _check_account(client: TestClient, app: FastAPI, acct: str, key: str, expected: set[str]) -> set[str]:
    """Every receipt of the account verifies, sits in exactly one anchored tree, and the ledger rebuilds it;
    returns the account's tree ids."""
    h = {"Authorization": f"Bearer {key}"}
    pem = client.get("/v1/receipts/public-key", headers=h).json()["data"]["public_key_pem"]
    listed = client.get("/v1/receipts", params={"limit": 1000}, headers=h).json()["data"]["receipts"]
    assert {r["receipt_id"] for r in listed} == expected
    assert [r for r in listed if "integrity" in r] == []  # each checked against its signed tree when listed
    for r in listed:
        doc = client.get(f"/v1/receipts/{r['receipt_id']}", headers=h).json()["data"]
        assert verify_document(doc, pem).ok, r
    st: state_mod.AppState = app.state.pm
    with st.db.connect() as conn:
        trees = {
            row.tree_id: row.tree_size
            for row in conn.execute(sa.select(receipt_trees).where(receipt_trees.c.account_id == acct))
        }
        per_tree = dict(
            conn.execute(
                sa.select(receipt_trees.c.tree_id, sa.func.count())
                .join(receipts, receipts.c.tree_seq == receipt_trees.c.seq)
                .where(receipt_trees.c.account_id == acct)
                .group_by(receipt_trees.c.tree_id)
            ).all()
        )
        anchors = [a for a in iter_anchors(conn, acct) if a.kind == "receipt_tree"]
        built = ledger.collect(conn, acct, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        chain = audit.verify_account(conn, acct, [audit.PublicKey.of(st.signer)])
    assert per_tree == trees  # no empty tree, no tree larger than its receipts
    assert sorted(a.tree_id for a in anchors) == sorted(trees)  # one anchor per tree
    assert built.problems == []
    assert {r.id for r in built.records if r.kind == "job" and r.status == "ok"} == expected
    assert chain.ok, chain.first_break
    # `powermeter receipts check`: the receipts of a batch's trees interleave in insertion order (accounts
    # alternate), every tree is still matched whole
    checked = integrity.check_all(st.db.connect, st.signer.public_key, st.signer.key_id)
    assert checked.ok, checked.failures[:3]
    return set(trees)


def test_a_batch_of_reports_is_one_signed_tree_per_account_and_every_receipt_verifies(
    settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unit_of_work, "MAX_BATCH_AGE_S", 5.0)  # the burst is one batch
    app = _app(settings, clock)
    a, key_a = _key(app, clock, "a@example.com")
    b, key_b = _key(app, clock, "b@example.com")
    # two locations in one tree: its profile list grows as the leaves come (receipts point into it by index)
    reqs = [(key_a, {**JOB, "job_id": f"a-{i}", "geo_iso": "FR" if i % 4 == 1 else "US"}) for i in range(30)]
    for i in range(10):  # the two accounts alternate: their receipts interleave in the table
        reqs.insert(3 * i, (key_b, {**JOB, "job_id": f"b-{i}", "cpu_cores": 4}))
    reqs.insert(15, (key_a, {**JOB, "job_id": "a-unknown", "geo_iso": "XX-NOWHERE"}))  # 400, mid-batch
    with TestClient(app) as client:
        responses = _burst(client, app, reqs)
        ok = [r.json()["data"] for r in responses if r.status_code == 200]
        assert [r.status_code for r in responses].count(400) == 1
        assert len(ok) == 40
        ids_a = {d["receipt_id"] for d in ok if d["job_id"].startswith("a-")}
        ids_b = {d["receipt_id"] for d in ok if d["job_id"].startswith("b-")}
        assert len(ids_a) == 30
        assert len(ids_b) == 10
        trees_a = _check_account(client, app, a, key_a, ids_a)
        trees_b = _check_account(client, app, b, key_b, ids_b)
        if _grouped(app):  # one tree per account for the batch (one per report on PostgreSQL)
            assert len(trees_a) == len(trees_b) == 1
            with app.state.pm.db.connect() as conn:
                profile_ids = conn.execute(
                    sa.select(receipt_trees.c.profile_ids).where(receipt_trees.c.account_id == a)
                ).scalar_one()
            assert len(json.loads(profile_ids)) == 2  # US and FR, each once
            # the receipts of a tree share its issue time
            assert len({d["timestamp"] for d in ok if d["job_id"].startswith("a-")}) == 1
        # a later batch opens a new tree
        r = client.post("/v1/report", json={**JOB, "job_id": "a-late"}, headers={"Authorization": f"Bearer {key_a}"})
        assert r.status_code == 200
        later = _check_account(client, app, a, key_a, ids_a | {r.json()["data"]["receipt_id"]})
        assert len(later - trees_a) == 1
    app.state.pm.db.dispose()


def test_a_re_report_inside_the_same_batch_gets_the_first_receipt_or_a_conflict(
    settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unit_of_work, "MAX_BATCH_AGE_S", 5.0)
    pending: list[str] = []
    real = jobs_service._pending_replay

    def spy(item: Any, tree: Any, job: Any, field_prefix: str) -> Any:  # the real function, counted
        pending.append(job.job_id)
        return real(item, tree, job, field_prefix)

    monkeypatch.setattr(jobs_service, "_pending_replay", spy)
    app = _app(settings, clock)
    a, key = _key(app, clock, "re@example.com")
    reqs = [(key, {**JOB, "job_id": f"j-{i}"}) for i in range(6)]
    reqs += [
        (key, {**JOB, "job_id": "j-1"}),  # same inputs: the first receipt back
        (key, {**JOB, "job_id": "j-2", "duration_minutes": 90}),  # different inputs: 409
        (key, {**JOB, "job_id": "j-3", "started_at": "2026-11-22T10:00:00Z"}),  # not a plain job: 409 too
    ]
    with TestClient(app) as client:
        responses = _burst(client, app, reqs)
        busy = [i for i, r in enumerate(responses) if r.status_code == 503]
        if _grouped(app):
            assert busy == []
        else:  # PostgreSQL lanes: two lanes storing the same new job_id can deadlock, one request gets a 503
            # (DATABASE_BUSY, nothing of it stored; docs/scaling.md): a client retries it
            for i in busy:
                assert responses[i].json()["error_code"] == "DATABASE_BUSY"
                k, body = reqs[i]
                responses[i] = client.post("/v1/report", json=body, headers={"Authorization": f"Bearer {k}"})
        by_job: dict[str, list[httpx.Response]] = {}
        for (_, body), r in zip(reqs, responses, strict=True):
            by_job.setdefault(body["job_id"], []).append(r)
        # (the two of a pair may run in either order: the one that ran first is the report, the other the re-report)
        assert [r.status_code for r in by_job["j-1"]] == [200, 200]
        first, again = sorted(by_job["j-1"], key=lambda r: "replayed" in r.json()["data"])
        assert again.json()["data"]["replayed"] is True
        assert "replayed" not in first.json()["data"]
        same = {k: v for k, v in again.json()["data"].items() if k != "replayed"}
        assert same == first.json()["data"]  # the same receipt, figures and time
        for job, field in (("j-2", "duration_minutes"), ("j-3", "started_at")):
            kept, refused = sorted(by_job[job], key=lambda r: r.status_code)
            assert kept.status_code == 200
            assert refused.status_code == 409, refused.text
            err = refused.json()
            assert err["error_code"] == "JOB_ID_CONFLICT"
            assert err["conflicts"][0]["receipt_id"] == kept.json()["data"]["receipt_id"]
            assert field in err["conflicts"][0]["fields"]
        expected = {r.json()["data"]["receipt_id"] for r in responses if r.status_code == 200}
        assert len(expected) == 6
        _check_account(client, app, a, key, expected)
        # after the commit the re-report is answered from the stored receipt, identically
        late = client.post("/v1/report", json={**JOB, "job_id": "j-1"}, headers={"Authorization": f"Bearer {key}"})
        assert late.json()["data"] == again.json()["data"]
    if _grouped(app):
        assert sorted(pending) == ["j-1", "j-2", "j-3"]  # answered from the batch's memory


def test_a_report_refused_by_the_kwh_cap_leaves_no_leaf(settings: Settings, clock: FrozenClock) -> None:
    app = _app(settings, clock, daily_kwh=1.0)
    a, key = _key(app, clock, "cap@example.com")
    with TestClient(app) as client:
        one = client.post("/v1/report", json={**JOB, "job_id": "probe"}, headers={"Authorization": f"Bearer {key}"})
        kwh = one.json()["data"]["kwh"]
        fits = int((1.0 - kwh) // kwh)
        responses = _burst(client, app, [(key, {**JOB, "job_id": f"c-{i}"}) for i in range(fits + 5)])
        codes = [r.status_code for r in responses]
        assert codes.count(200) == fits
        assert codes.count(429) == 5
        expected = {one.json()["data"]["receipt_id"]} | {
            r.json()["data"]["receipt_id"] for r in responses if r.status_code == 200
        }
        _check_account(client, app, a, key, expected)
    app.state.pm.db.dispose()
