"""A receipt row altered in the database is never served or counted silently (issue 14 item 8)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.infra.state import AppState
from powermeter.jobs import integrity

JOB = {"job_id": "tamper-me", "duration_minutes": 120, "cpu_cores": 8, "memory_gb": 32, "geo_iso": "US"}


def _report(client: TestClient, auth: dict[str, str], job_id: str = "tamper-me") -> str:
    r = client.post("/v1/report", headers=auth, json={**JOB, "job_id": job_id})
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["receipt_id"])


def _sql(state: AppState, text: str, **params: object) -> None:
    with state.db.begin() as conn:
        conn.execute(sa.text(text), params)


def test_an_altered_row_is_a_409_and_flagged_in_lists(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    rid = _report(client, auth)
    other = _report(client, auth, "untouched")
    assert client.get(f"/v1/receipts/{rid}", headers=auth).status_code == 200
    listed = client.get("/v1/receipts", headers=auth).json()["data"]["receipts"]
    assert all("integrity" not in r for r in listed)
    _sql(state, "UPDATE receipts SET kwh = 1e-7 WHERE receipt_id = :r", r=rid)
    r = client.get(f"/v1/receipts/{rid}", headers=auth)
    assert r.status_code == 409
    body = r.json()
    assert body["error_code"] == "RECEIPT_INTEGRITY_FAILED"
    assert rid in body["detail"]
    assert body["receipt_id"] == rid
    assert client.get(f"/v1/receipts/{rid}/download", headers=auth).status_code == 409
    assert client.get(f"/v1/receipts/{other}", headers=auth).status_code == 200
    listed = client.get("/v1/receipts?job_id=tamper-me", headers=auth).json()["data"]["receipts"]
    assert listed[0]["integrity"] == "failed"
    assert listed[0]["integrity_error"]["error_code"] == "RECEIPT_INTEGRITY_FAILED"
    listed = client.get("/v1/receipts?job_id=untouched", headers=auth).json()["data"]["receipts"]
    assert "integrity" not in listed[0]


def test_rewriting_the_leaf_hashes_and_root_is_caught_by_the_signature(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    """An attacker with database access recomputes the leaf and the root; only the signature is left."""
    from powermeter.methodology.merkle import leaf_hash, merkle_root

    rid = _report(client, auth)
    doc = client.get(f"/v1/receipts/{rid}", headers=auth).json()["data"]
    receipt = doc["receipt"]
    receipt["results"]["kwh"] = 1e-7
    from powermeter.methodology.canonical import canonical_bytes

    new_leaf = leaf_hash(canonical_bytes(receipt))
    with state.db.begin() as conn:
        conn.execute(sa.text("UPDATE receipts SET kwh = 1e-7 WHERE receipt_id = :r"), {"r": rid})
        conn.execute(
            sa.text("UPDATE receipt_trees SET leaf_hashes = :h, root_sha256 = :root"),
            {"h": new_leaf, "root": merkle_root([new_leaf]).hex()},
        )
    r = client.get(f"/v1/receipts/{rid}", headers=auth)
    assert r.status_code == 409
    assert "signature" in r.json()["reason"]


def test_check_all_names_altered_and_missing_receipts(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    jobs = [{**JOB, "job_id": f"b{i}"} for i in range(5)]
    assert client.post("/v1/batch", headers=auth, json={"jobs": jobs}).status_code == 200
    rid = _report(client, auth)
    signer = state.signer
    assert integrity.check_all(state.db.connect, signer.public_key, signer.key_id).ok
    _sql(state, "UPDATE receipts SET co2_grams = co2_grams * 0.5 WHERE receipt_id = :r", r=rid)
    _sql(state, "DELETE FROM receipts WHERE job_id = 'b3'")
    res = integrity.check_all(state.db.connect, signer.public_key, signer.key_id)
    assert res.receipts == 5
    reasons = {f.receipt_id: f.reason for f in res.failures}
    assert rid in reasons
    assert any("missing" in r and "3" in r for r in reasons.values())


def test_receipts_check_cli_names_the_altered_receipt_and_exits_1(
    client: TestClient, auth: dict[str, str], state: AppState, tmp_path: object
) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import SECRET

    rid = _report(client, auth)
    _report(client, auth, "fine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
    env.update(
        {
            "POWERMETER_DATABASE_URL": state.settings.resolved_database_url,
            "POWERMETER_SECRET_KEY": SECRET,
            "POWERMETER_DATA_DIR": str(state.settings.data_dir),
        }
    )
    cmd = [sys.executable, "-m", "powermeter", "receipts", "check"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "2 receipts" in ok.stderr
    assert "0 altered" in ok.stderr
    _sql(state, "UPDATE receipts SET kwh = 1e-7 WHERE receipt_id = :r", r=rid)
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1
    assert f"ALTERED {rid}" in bad.stdout
    assert "1 altered" in bad.stderr


def test_reports_exclude_altered_receipts_and_say_so(
    client: TestClient, auth: dict[str, str], state: AppState, tmp_path: object
) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    rid = _report(client, auth)
    _report(client, auth, "kept")
    before = client.get("/v1/reports/emissions?start=2026-01-01&end=2026-12-31", headers=auth).json()["data"]
    assert before["totals"]["records"] == 2
    assert before["excluded_receipts"] == []
    _sql(state, "UPDATE receipts SET kwh = 1e-7 WHERE receipt_id = :r", r=rid)
    r = client.get("/v1/reports/emissions?start=2026-01-01&end=2026-12-31", headers=auth)
    assert r.status_code == 200
    doc = r.json()["data"]
    assert doc["totals"]["records"] == 1
    assert [e["receipt_id"] for e in doc["excluded_receipts"]] == [rid]
    assert doc["excluded_receipts"][0]["error_code"] == "RECEIPT_INTEGRITY_FAILED"
    assert any("failed their integrity check" in n for n in doc["data_limits"])
    assert [e["id"] for e in doc["entries"]] != []
    assert rid not in [e["id"] for e in doc["entries"]]
    assert any(p["record"] == rid for p in doc["completeness"]["problems"])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(r.json()))
    res = subprocess.run(
        [sys.executable, "-m", "powermeter", "reports", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # excluded and said so, and the report does not verify as complete while the record is altered
    # (issue 20: a report proves it covers every signed leaf of its period)
    assert res.returncode != 0, res.stdout + res.stderr
    assert rid in res.stdout + res.stderr


def test_the_parallel_check_finds_the_same_failures(client: TestClient, auth: dict[str, str], state: AppState) -> None:
    from tests.conftest import SECRET

    ids = [_report(client, auth, f"p{i}") for i in range(6)]
    _sql(state, "UPDATE receipts SET geo_iso = 'FR' WHERE receipt_id IN (:a, :b)", a=ids[1], b=ids[4])
    one = integrity.check_all(state.db.connect, state.signer.public_key, state.signer.key_id)
    many = integrity.check_parallel(state.settings.resolved_database_url, SECRET, 3)
    assert many.receipts == one.receipts == 6
    assert many.trees == one.trees == 6
    assert (
        sorted(f.receipt_id for f in many.failures)
        == sorted(f.receipt_id for f in one.failures)
        == sorted([ids[1], ids[4]])
    )
