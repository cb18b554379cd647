"""Re-reporting a job_id (issue 15, item 1): same inputs → the existing receipt; different → 409.

Seed 000's curl and Python examples both send ``ml-training-001``; a client running one after the
other must get the same answer twice, and nothing may be stored or counted twice.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.infra.state import AppState
from powermeter.jobs import service as svc
from powermeter.jobs.schemas import JobIn
from powermeter.jobs.tables import receipt_trees, receipts
from tests.conftest import needs_postgres

SEED_REPORT = {
    "job_id": "ml-training-001",
    "duration_minutes": 120,
    "cpu_cores": 8,
    "memory_gb": 32,
    "gpu_cores": 2,
    "geo_iso": "US",
}


def _count(state: AppState, table: sa.Table) -> int:
    with state.db.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _stats(client: TestClient, auth: dict[str, str]) -> dict[str, float]:
    data: dict[str, float] = client.get("/v1/api-keys/stats", headers=auth).json()["data"]
    return data


def test_seed_examples_run_twice_give_the_same_receipt(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    first = client.post("/v1/report", headers=auth, json=SEED_REPORT)
    assert first.status_code == 200, first.text
    kwh_after_first = _stats(client, auth)["daily_usage_kwh"]
    # the seed's Python example: the same body (key order differs, integers as floats)
    second = client.post(
        "/v1/report", headers=auth, json={**{k: SEED_REPORT[k] for k in reversed(SEED_REPORT)}, "cpu_cores": 8.0}
    )
    assert second.status_code == 200, second.text
    a, b = first.json()["data"], second.json()["data"]
    assert b["receipt_id"] == a["receipt_id"]
    assert b["replayed"] is True
    assert "replayed" not in a
    for k in ("job_id", "kwh", "co2_grams", "timestamp", "breakdown", "location", "factors", "warnings", "methodology"):
        assert b[k] == a[k], k
    # nothing stored or counted twice
    assert _count(state, receipts) == 1
    assert _count(state, receipt_trees) == 1
    assert _stats(client, auth)["daily_usage_kwh"] == kwh_after_first
    listed = client.get("/v1/receipts", headers=auth, params={"job_id": "ml-training-001"}).json()["data"]
    assert listed["total"] == 1


def test_rereport_with_other_inputs_is_a_conflict_naming_the_fields(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    assert client.post("/v1/report", headers=auth, json=SEED_REPORT).status_code == 200
    kwh = _stats(client, auth)["daily_usage_kwh"]
    r = client.post("/v1/report", headers=auth, json={**SEED_REPORT, "cpu_cores": 16, "geo_iso": "FR"})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error_code"] == "JOB_ID_CONFLICT"
    assert "ml-training-001" in body["detail"]
    [c] = body["conflicts"]
    assert c["job_id"] == "ml-training-001"
    assert c["fields"] == ["cpu_cores", "geo_iso"]
    assert c["receipt_id"].startswith("rcpt_")
    # an override counts as an input too
    r = client.post("/v1/report", headers=auth, json={**SEED_REPORT, "pue": 1.1})
    assert r.status_code == 409
    assert r.json()["conflicts"][0]["fields"] == ["pue"]
    assert _count(state, receipts) == 1
    assert _stats(client, auth)["daily_usage_kwh"] == kwh


def test_batch_replays_per_job_and_records_only_new_ones(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    jobs = [
        {"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 16, "geo_iso": "US"},
        {"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"},
    ]
    first = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert first.status_code == 200, first.text
    kwh1 = _stats(client, auth)["daily_usage_kwh"]
    again = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert again.status_code == 200, again.text
    d1, d2 = first.json()["data"], again.json()["data"]
    assert [j["receipt_id"] for j in d2["jobs"]] == [j["receipt_id"] for j in d1["jobs"]]
    assert all(j["replayed"] for j in d2["jobs"])
    assert d2["replayed_jobs"] == 2
    assert d2["total_kwh"] == d1["total_kwh"]
    assert d2["tree"] is None
    assert _stats(client, auth)["daily_usage_kwh"] == kwh1
    # a mix: one re-report, one new job → one new receipt, only its kWh counted
    mixed = [jobs[1], {"job_id": "job-003", "duration_minutes": 30, "cpu_cores": 2, "geo_iso": "SE"}]
    r = client.post("/v1/batch", headers=auth, json={"jobs": mixed})
    assert r.status_code == 200, r.text
    d3 = r.json()["data"]
    assert d3["jobs"][0]["receipt_id"] == d1["jobs"][1]["receipt_id"]
    assert d3["jobs"][0]["replayed"] is True
    assert "replayed" not in d3["jobs"][1]
    assert d3["tree"]["tree_size"] == 1
    assert _count(state, receipts) == 3
    new_kwh = d3["jobs"][1]["kwh"]
    assert math.isclose(_stats(client, auth)["daily_usage_kwh"], kwh1 + new_kwh, abs_tol=1e-5)
    # the new receipt verifies like any other
    doc = client.get(f"/v1/receipts/{d3['jobs'][1]['receipt_id']}", headers=auth)
    assert doc.status_code == 200


def test_a_large_batch_resent_with_new_jobs_replays_the_stored_ones(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    """Over 64 jobs a batch is stored in bulk (PostgreSQL: one COPY); a duplicate in it still leads to
    per-job replay, and only the new jobs are stored and counted."""
    jobs = [
        {"job_id": f"big-{i:04d}", "duration_minutes": 10 + i % 50, "cpu_cores": 2, "geo_iso": "US"} for i in range(300)
    ]
    first = client.post("/v1/batch", headers=auth, json={"jobs": jobs[:200]})
    assert first.status_code == 200, first.text
    again = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert again.status_code == 200, again.text
    d1, d2 = first.json()["data"], again.json()["data"]
    assert [j["receipt_id"] for j in d2["jobs"][:200]] == [j["receipt_id"] for j in d1["jobs"]]
    assert d2["replayed_jobs"] == 200
    assert d2["tree"]["tree_size"] == 100
    assert _count(state, receipts) == 300


def test_batch_conflicts_are_atomic_and_all_listed(client: TestClient, auth: dict[str, str], state: AppState) -> None:
    jobs = [{"job_id": f"j{i}", "duration_minutes": 10, "cpu_cores": 1, "geo_iso": "US"} for i in range(4)]
    assert client.post("/v1/batch", headers=auth, json={"jobs": jobs}).status_code == 200
    kwh = _stats(client, auth)["daily_usage_kwh"]
    changed = [
        {**jobs[0], "duration_minutes": 11},  # conflict
        jobs[1],  # same: would be a replay
        {"job_id": "new", "duration_minutes": 1, "geo_iso": "US"},  # new
        {**jobs[3], "memory_gb": 4, "gpu_model": "H100"},  # conflict, two fields
    ]
    r = client.post("/v1/batch", headers=auth, json={"jobs": changed})
    assert r.status_code == 409, r.text
    conflicts = r.json()["conflicts"]
    assert [(c["index"], c["field"], c["fields"]) for c in conflicts] == [
        (0, "jobs[0].job_id", ["duration_minutes"]),
        (3, "jobs[3].job_id", ["gpu_model", "memory_gb"]),
    ]
    # atomic: the new job was not stored, nothing counted
    assert _count(state, receipts) == 4
    assert _count(state, receipt_trees) == 1
    assert _stats(client, auth)["daily_usage_kwh"] == kwh


def test_same_inputs_is_defined_over_every_schema_field() -> None:
    """Defaults given explicitly equal omitted ones, numbers compare by value, and any field of the
    request schema (including ones added later) takes part."""
    a = JobIn.model_validate({"job_id": "x", "duration_minutes": 5, "geo_iso": "US"})
    b = JobIn.model_validate(
        {"job_id": "x", "duration_minutes": 5.0, "geo_iso": "US", "cpu_cores": 0, "gpu_model": None}
    )
    assert svc.differing_inputs(svc.canonical_inputs(a), svc.canonical_inputs(b)) == []
    fields = set(JobIn.model_fields) - {"job_id"}
    c = JobIn.model_validate(
        {"job_id": "x", "duration_minutes": 5, "geo_iso": "US", "region": "us-east-1", "provider": "aws"}
    )
    assert svc.differing_inputs(svc.canonical_inputs(a), svc.canonical_inputs(c)) == ["provider", "region"]
    assert set(svc.canonical_inputs(c)) <= fields


def test_batch_total_is_the_exact_sum_of_the_listed_values(client: TestClient, auth: dict[str, str]) -> None:
    """Item 6: totals are the correctly rounded sum of the listed jobs' values (no float drift)."""
    jobs = [
        {
            "job_id": f"f{i}",
            "duration_minutes": 7 + i % 13,
            "cpu_cores": 0.1 * (1 + i % 7),
            "memory_gb": 0.3,
            "geo_iso": ["US", "SE", "FR", "EU"][i % 4],
        }
        for i in range(3000)
    ]
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    kwh = [j["kwh"] for j in data["jobs"]]
    co2 = [j["co2_grams"] for j in data["jobs"]]
    assert data["total_kwh"] == float(sum(Fraction(x) for x in kwh))
    assert data["total_co2_grams"] == float(sum(Fraction(x) for x in co2))
    naive = 0.0
    for x in kwh:
        naive += x
    assert naive != data["total_kwh"]  # the running sum drifts on this input: the test can fail


class _JobWithSite(JobIn):
    """A request schema with a field added later (as issue 20 adds ``site``, ``ownership``…)."""

    site: str | None = None


def test_a_field_added_to_the_schema_is_stored_and_compared(
    app: FastAPI, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from powermeter.accounts import service as accounts
    from powermeter.infra.security import hash_api_key

    monkeypatch.setattr(svc, "_SCHEMA_HAS_EXTRA_FIELDS", True)
    jobs = app.state.services.jobs
    now = state.clock.now()

    def record(*js: _JobWithSite) -> svc.Recorded:
        with state.db.begin() as conn:
            p = accounts.authenticate(conn, state.settings, hash_api_key(api_key, state.secret), now)
            return jobs.record(conn, p, state.signer, now, list(js), field_prefix="jobs[{i}].")

    a = _JobWithSite.model_validate({"job_id": "s1", "duration_minutes": 5, "geo_iso": "US", "site": "lab-a"})
    b = _JobWithSite.model_validate({"job_id": "s2", "duration_minutes": 5, "geo_iso": "US"})
    first = record(a, b)
    again = record(a, b)
    assert again.receipt_ids == first.receipt_ids
    assert again.replayed is not None
    assert all(r is not None for r in again.replayed)
    with pytest.raises(svc.Conflict) as exc:
        record(a.model_copy(update={"site": "lab-b"}), b.model_copy(update={"site": "lab-a"}))
    assert [(c["index"], c["fields"]) for c in exc.value.extra["conflicts"]] == [(0, ["site"]), (1, ["site"])]


@needs_postgres
def test_concurrent_first_reports_of_one_job_get_one_receipt(app: FastAPI, state: AppState, api_key: str) -> None:
    """Two transactions report the same new job at once: the unique index makes the second wait for
    the first, which commits; the second is then answered as a re-report (same receipt)."""
    import threading

    from powermeter.accounts import service as accounts
    from powermeter.infra.security import hash_api_key

    jobs = app.state.services.jobs
    now = state.clock.now()
    job = JobIn.model_validate(SEED_REPORT)
    key_hash = hash_api_key(api_key, state.secret)
    results: dict[str, svc.Recorded] = {}

    with state.db.begin() as conn:
        principal = accounts.authenticate(conn, state.settings, key_hash, now)

    with state.db.begin() as conn_a:
        results["a"] = jobs.record(conn_a, principal, state.signer, now, [job], field_prefix="")

        def second() -> None:
            with state.db.begin() as conn_b:
                results["b"] = jobs.record(conn_b, principal, state.signer, now, [job], field_prefix="")

        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=1.0)
        assert t.is_alive()  # blocked on the unique index until the first commits
    t.join(timeout=30)
    assert not t.is_alive()
    assert results["b"].receipt_ids == results["a"].receipt_ids
    assert results["b"].replayed is not None
    assert results["b"].replayed[0] is not None
    assert _count(state, receipts) == 1
