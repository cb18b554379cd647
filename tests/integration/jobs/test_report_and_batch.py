"""POST /v1/report and /v1/batch: the seed examples, validation, atomic batches, duplicates."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.infra.state import AppState
from powermeter.jobs.tables import receipts
from tests.conftest import MakeKey

SEED_REPORT = {
    "job_id": "ml-training-001",
    "duration_minutes": 120,
    "cpu_cores": 8,
    "memory_gb": 32,
    "gpu_cores": 2,
    "geo_iso": "US",
}
SEED_BATCH = {
    "jobs": [
        {"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 16, "geo_iso": "US"},
        {"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"},
    ]
}
# The Python example of the seed omits memory_gb on job-001.
SEED_PYTHON_JOBS = [
    {"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "US"},
    {"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"},
]


def _stored(state: AppState) -> int:
    with state.db.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(receipts)).scalar_one())


def _kwh_today(client: TestClient, auth: dict[str, str]) -> float:
    return float(client.get("/v1/api-keys/stats", headers=auth).json()["data"]["daily_usage_kwh"])


def test_seed_report_example(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/report", headers=auth, json=SEED_REPORT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    data = body["data"]
    # the seed's documented fields
    assert data["job_id"] == "ml-training-001"
    assert data["receipt_id"].startswith("rcpt_")
    # 8×12 + 2×200 + 32×0.3725 = 507.92 W × PUE 1.56 × 2 h
    assert data["kwh"] == pytest.approx(1.5847104)
    assert data["co2_grams"] == pytest.approx(1.5847104 * data["location"]["intensity_g_per_kwh"])
    # the added detail
    assert data["location"]["code"] == "US"
    assert set(data["breakdown"]) == {"cpu_kwh", "gpu_kwh", "memory_kwh", "overhead_kwh", "pue"}
    assert sum(data["breakdown"][k] for k in ("cpu_kwh", "gpu_kwh", "memory_kwh", "overhead_kwh")) == pytest.approx(
        data["kwh"]
    )
    names = [f["name"] for f in data["factors"]]
    assert names == [
        "cpu_power_per_core", "cpu_utilization", "gpu_power", "gpu_utilization", "memory_power_per_gb", "pue",
        "carbon_intensity",
    ]  # fmt: skip
    ci = data["factors"][-1]
    assert ci["dataset_version"].startswith("sha256:")
    assert ci["unit"] == "gCO2e/kWh"
    # what the seed's Python example prints
    print(f"Receipt ID: {data['receipt_id']}", f"Energy: {data['kwh']} kWh", f"CO2: {data['co2_grams']} grams")


@pytest.mark.parametrize("payload", [SEED_BATCH, {"jobs": SEED_PYTHON_JOBS}])
def test_seed_batch_examples(client: TestClient, auth: dict[str, str], payload: dict[str, Any]) -> None:
    r = client.post("/v1/batch", headers=auth, json=payload)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["total_jobs"] == 2
    assert [j["job_id"] for j in data["jobs"]] == ["job-001", "job-002"]
    for j in data["jobs"]:
        assert set(j) >= {"job_id", "kwh", "receipt_id"}
    assert data["total_kwh"] == pytest.approx(sum(j["kwh"] for j in data["jobs"]))
    assert data["total_co2_grams"] == pytest.approx(sum(j["co2_grams"] for j in data["jobs"]))
    # EU job: (8×12 + 200) W × 1.56 × 1.5 h
    assert data["jobs"][1]["kwh"] == pytest.approx(0.69264)
    tree = data["tree"]
    assert tree["tree_size"] == 2
    assert tree["algorithm"] == "Ed25519"
    print(f"Total energy: {data['total_kwh']} kWh", f"Jobs processed: {data['total_jobs']}")


def test_overrides_are_applied_and_reported(client: TestClient, auth: dict[str, str]) -> None:
    job = {
        "job_id": "gpu-1", "duration_minutes": 60, "cpu_cores": 64, "memory_gb": 256, "gpu_cores": 4,
        "geo_iso": "US", "cpu_model": "AMD EPYC 7763", "gpu_model": "H100", "cpu_utilization": 0.5,
        "gpu_utilization": 0.8, "provider": "aws", "region": "us-east-1",
    }  # fmt: skip
    data = client.post("/v1/report", headers=auth, json=job).json()["data"]
    assert data["kwh"] == pytest.approx(2.970432)  # hand-computed in tests/unit/test_compute_job.py
    assert data["location"]["code"] == "aws:us-east-1"
    by_name = {f["name"]: f for f in data["factors"]}
    assert by_name["gpu_power"]["value"] == 700
    assert by_name["pue"]["value"] == 1.2
    assert data["breakdown"]["pue"] == 1.2


def test_unknown_hardware_model_is_a_visible_warning(client: TestClient, auth: dict[str, str]) -> None:
    job = {"job_id": "x", "duration_minutes": 60, "cpu_cores": 2, "geo_iso": "DE", "gpu_model": "Voodoo 5"}
    data = client.post("/v1/report", headers=auth, json=job).json()["data"]
    assert any("Voodoo 5" in w for w in data["warnings"])


def test_unknown_location_is_a_400_naming_the_value_and_the_locations_endpoint(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    r = client.post("/v1/report", headers=auth, json={**SEED_REPORT, "geo_iso": "Atlantis"})
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert "Atlantis" in body["detail"]
    assert "GET /v1/locations" in body["detail"]
    assert body["errors"][0]["field"] == "geo_iso"
    r = client.post("/v1/report", headers=auth, json={**SEED_REPORT, "provider": "aws", "region": "mars-1"})
    assert r.status_code == 400
    assert "aws:mars-1" in r.json()["detail"]
    assert _stored(state) == 0


def test_a_rejected_batch_lists_every_invalid_job_and_stores_nothing(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    jobs: list[dict[str, Any]] = [
        {"job_id": f"ok-{i}", "duration_minutes": 30, "cpu_cores": 2, "geo_iso": "FR"} for i in range(6)
    ]
    jobs[1]["geo_iso"] = "NOWHERE"  # unknown location
    jobs[2]["duration_minutes"] = -5  # field error
    jobs[4]["cpu_utilization"] = 1.5  # field error
    jobs[5] = {"job_id": "ok-5", "duration_minutes": 30, "geo_iso": "XX", "memory_gb": "lots"}  # two errors
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 400
    errors = r.json()["errors"]
    got = {(e["index"], e["field"]) for e in errors}
    assert got == {
        (1, "jobs[1].geo_iso"),
        (2, "jobs[2].duration_minutes"),
        (4, "jobs[4].cpu_utilization"),
        (5, "jobs[5].geo_iso"),
        (5, "jobs[5].memory_gb"),
    }
    assert [e["index"] for e in errors] == sorted(e["index"] for e in errors)
    assert _stored(state) == 0
    assert _kwh_today(client, auth) == 0.0


def test_ten_thousand_jobs_are_accepted_and_ten_thousand_and_one_refused(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    jobs = [{"job_id": f"j{i}", "duration_minutes": 1, "cpu_cores": 1, "geo_iso": "SE"} for i in range(10_001)]
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "jobs"
    assert "10000" in r.json()["detail"]
    assert _stored(state) == 0
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs[:10_000]})
    assert r.status_code == 200, r.text[:500]
    data = r.json()["data"]
    assert data["total_jobs"] == 10_000
    assert data["tree"]["tree_size"] == 10_000
    assert len({j["receipt_id"] for j in data["jobs"]}) == 10_000
    assert _stored(state) == 10_000
    assert client.post("/v1/batch", headers=auth, json={"jobs": []}).status_code == 400


def test_job_ids_are_unique_per_account(
    client: TestClient, auth: dict[str, str], make_key: MakeKey, state: AppState
) -> None:
    assert client.post("/v1/report", headers=auth, json=SEED_REPORT).status_code == 200
    # inside one batch: a 400 naming every repeated index, nothing stored
    jobs = [
        {"job_id": "new-1", "duration_minutes": 5, "geo_iso": "US"},
        {"job_id": "ml-training-001", "duration_minutes": 5, "geo_iso": "US"},
        {"job_id": "new-1", "duration_minutes": 5, "geo_iso": "US"},
    ]
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 400
    assert [e["index"] for e in r.json()["errors"]] == [2]  # in-request duplicate found first
    # against a stored receipt with other inputs: 409 (tests/integration/jobs/test_rereport.py)
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs[:2]})
    assert r.status_code == 409
    assert [(c["index"], c["field"]) for c in r.json()["conflicts"]] == [(1, "jobs[1].job_id")]
    assert _stored(state) == 1
    # another account may use the same job id
    other = {"Authorization": f"Bearer {make_key(email='other@example.com')}"}
    assert client.post("/v1/report", headers=other, json=SEED_REPORT).status_code == 200


def test_report_needs_the_report_scope(client: TestClient, make_key: MakeKey) -> None:
    key = make_key(email="reader@example.com", scopes=["receipts:read"])
    r = client.post("/v1/report", headers={"Authorization": f"Bearer {key}"}, json=SEED_REPORT)
    assert r.status_code == 403
    assert r.json()["error_code"] == "INSUFFICIENT_SCOPE"
    assert client.post("/v1/report", json=SEED_REPORT).status_code == 401


def test_unknown_fields_and_bad_json_are_400(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/report", headers=auth, json={**SEED_REPORT, "utilisation": 0.5})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "utilisation"
    r = client.post("/v1/batch", headers={**auth, "Content-Type": "application/json"}, content=b'{"jobs": [')
    assert r.status_code == 400
