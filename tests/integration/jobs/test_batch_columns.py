"""The column-by-column batch path (issue 13: a 10,000-job batch ≤ 3× the bare pipeline) stores, signs
and answers exactly what the per-job path does.

A batch of at least ``COLUMNAR_MIN_JOBS`` plain jobs (only the six base fields) is encoded, hashed and
inserted column by column. Each test below sends one batch through both paths, in a transaction
rolled back after each (so both get the same row numbers on SQLite), with the same random ids and the
same clock, and compares every stored byte and the response. Runs on the suite's database
(PostgreSQL + Redis in CI).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.accounts import service as accounts
from powermeter.infra.responses import FastJSONResponse
from powermeter.infra.security import hash_api_key
from powermeter.infra.state import AppState
from powermeter.jobs import receipts as rc
from powermeter.jobs import service as svc
from powermeter.jobs.schemas import JobIn
from powermeter.jobs.tables import receipt_trees, receipts

GEOS = ["US", "EU", "DE", "FR", "US-CA", "CAISO", "aws:us-east-1", "gcp:europe-west1", "azure:westeurope", "IN"]


def _jobs(n: int, ids: Iterator[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        job: dict[str, Any] = {
            "job_id": next(ids),
            "duration_minutes": [3, 0.5, 14.25, 7, 100][i % 5],
            "geo_iso": GEOS[i % len(GEOS)],
            "cpu_cores": 1 + i % 8,
        }
        if i % 3:
            job["memory_gb"] = [0.25, 4, 64, 3.75][i % 4]
        if i % 4 == 1:
            job["gpu_cores"] = 1 + i % 8
        out.append(job)
    return out


PLAIN = _jobs(300, (f"job-{i}" for i in range(10**6)))
# job ids orjson escapes (a quote, a backslash) and ones it does not (non-ASCII, U+2028, a comma)
ODD_IDS = _jobs(64, itertools.cycle(['q"uote', "back\\slash", "é€😀", "line\u2028sep", "a,b", "tab-less"]))
ODD_IDS = [{**j, "job_id": f"{j['job_id']}-{i}"} for i, j in enumerate(ODD_IDS)]
# numbers with an exponent in ECMAScript form (a tiny kWh, memory energy of a short job): each written by
# the RFC 8785 number encoder inside its column
TINY = [
    *_jobs(40, (f"t-{i}" for i in range(10**6))),
    {"job_id": "tiny", "duration_minutes": 1e-4, "cpu_cores": 1, "geo_iso": "US"},
]


def _run(
    app: FastAPI, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch, raw: bytes, *, columnar: bool
) -> tuple[bytes, list[tuple[Any, ...]], tuple[Any, ...], int]:
    """One batch in a rolled-back transaction: the response bytes, the receipt rows and the tree row
    (without their serial numbers, which PostgreSQL does not give back on rollback), and how many
    times the column encoder produced the hashes."""
    jobs = app.state.services.jobs
    counter = itertools.count()
    monkeypatch.setattr(svc, "secrets", SimpleNamespace(token_hex=lambda k: f"{next(counter):0{2 * k}x}"))
    monkeypatch.setattr(svc, "COLUMNAR_MIN_JOBS", 32 if columnar else 10**9)
    used = []
    real = rc.plain_leaf_hashes

    def spy(*args: Any) -> list[bytes]:
        used.append(1)
        return real(*args)

    monkeypatch.setattr(rc, "plain_leaf_hashes", spy)
    now = state.clock.now()
    with state.db.engine.connect() as conn:
        tx = conn.begin()
        try:
            principal = accounts.authenticate(conn, state.settings, hash_api_key(api_key, state.secret), now)
            body = jobs.parse_batch(raw)
            rec = jobs.record(conn, principal, state.signer, now, body.jobs, field_prefix="jobs[{i}].")
            response = FastJSONResponse({"status": "success", "data": jobs.batch_data(body.jobs, rec)}).body
            tree = conn.execute(sa.select(receipt_trees).where(receipt_trees.c.tree_id == rec.tree_id)).one()
            rows = conn.execute(
                sa.select(receipts).where(receipts.c.tree_seq == tree.seq).order_by(receipts.c.leaf_index)
            ).all()
            # every receipt rebuilds from its stored row to the hashed leaf and verifies offline
            for k in (0, len(rows) // 2, len(rows) - 1):
                doc = svc.receipt_document(conn, principal.account_id, rows[k].receipt_id)
                assert rc.verify_document(doc, state.signer.public_key_pem()).ok
        finally:
            tx.rollback()
    stored = [tuple(v for c, v in r._mapping.items() if c not in ("seq", "tree_seq")) for r in rows]
    head = tuple(v for c, v in tree._mapping.items() if c != "seq")
    return bytes(response), stored, head, sum(used)


@pytest.mark.parametrize("jobs", [PLAIN, ODD_IDS, TINY], ids=["plain", "ids", "tiny"])
def test_a_plain_batch_stores_signs_and_answers_what_the_per_job_path_does(
    app: FastAPI, state: AppState, api_key: str, monkeypatch: pytest.MonkeyPatch, jobs: list[dict[str, Any]]
) -> None:
    raw = orjson.dumps({"jobs": jobs})
    new = _run(app, state, api_key, monkeypatch, raw, columnar=True)
    old = _run(app, state, api_key, monkeypatch, raw, columnar=False)
    assert (new[3], old[3]) == (1, 0)  # the column encoder made the hashes once, the per-job path never
    assert new[0] == old[0]  # response bytes, the signed tree head included
    assert new[1] == old[1]  # every receipt row
    assert new[2] == old[2]  # the tree: leaf hashes, root, signature, details, profiles
    assert len(new[1]) == len(jobs)


def test_fields_beyond_the_base_ones_default_to_none() -> None:
    """A job that sets only the base fields is plain: the column path reads nothing else of it, which
    is right only while every other field of the request schema defaults to ``None``."""
    others = {name: f.default for name, f in JobIn.model_fields.items() if name not in rc.BASE_FIELDS}
    assert others  # overrides, measurements, started_at…
    assert set(others.values()) == {None}, others


def test_a_large_batch_with_overrides_measurements_and_times_keeps_them(
    client: TestClient, auth: dict[str, str]
) -> None:
    """Jobs that set more than the base fields take the per-job path, whatever the batch size."""
    jobs: list[dict[str, Any]] = [
        {"job_id": f"big-{i}", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "US"} for i in range(40)
    ]
    jobs[5]["measured_cpu_kwh"] = 0.2
    jobs[7]["started_at"] = "2026-11-22T10:00:00Z"
    jobs[9]["gpu_model"] = "H100"
    jobs[9]["gpu_cores"] = 1
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 200, r.text
    out = r.json()["data"]["jobs"]
    docs = {}
    for i in (0, 5, 7, 9):
        doc = client.get(f"/v1/receipts/{out[i]['receipt_id']}/download", headers=auth).json()
        docs[i] = doc.get("data", doc)["receipt"]
    assert docs[5]["inputs"]["measured_cpu_kwh"] == 0.2
    assert docs[5]["results"]["energy_sources"]["cpu"]["method"] == "measured"
    assert docs[7]["inputs"]["started_at"] == "2026-11-22T10:00:00Z"
    assert docs[9]["inputs"]["gpu_model"] == "H100"
    assert "measured_cpu_kwh" not in docs[0]["inputs"]
    assert out[5]["kwh"] != out[0]["kwh"]  # the measurement replaced the modelled CPU figure


def test_a_large_plain_batch_names_every_duplicate_job_id(client: TestClient, auth: dict[str, str]) -> None:
    jobs = [{"job_id": f"d-{i}", "duration_minutes": 10, "geo_iso": "FR"} for i in range(50)]
    jobs[20]["job_id"] = "d-3"
    jobs[41]["job_id"] = "d-7"
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 400, r.text
    errors = r.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(20, "jobs[20].job_id"), (41, "jobs[41].job_id")]
    assert client.get("/v1/receipts", headers=auth).json()["data"]["total"] == 0
