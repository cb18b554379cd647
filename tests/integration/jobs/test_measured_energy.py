"""Measured energy on /v1/report and /v1/batch: components replaced, sources signed, plausibility flagged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from powermeter.jobs.receipts import verify_document
from powermeter.methodology.compute_job import energy_kwh

JOB = {"job_id": "m-1", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 10, "geo_iso": "DE", "pue": 1.5}


def _pem(client: TestClient) -> str:
    pem: str = client.get("/v1/receipts/public-key").json()["data"]["public_key_pem"]
    return pem


def test_measured_cpu_replaces_the_modelled_figure_and_the_receipt_says_so(
    client: TestClient, auth: dict[str, str]
) -> None:
    modelled_cpu = 4 * 12.0 / 1000  # 1 h × 4 cores × 12 W
    r = client.post("/v1/report", headers=auth, json={**JOB, "measured_cpu_kwh": 0.03})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["breakdown"]["cpu_kwh"] == 0.03
    assert d["breakdown"]["memory_kwh"] == pytest.approx(10 * 0.3725 / 1000)
    assert d["kwh"] == pytest.approx((0.03 + 10 * 0.3725 / 1000) * 1.5)
    src = d["energy_sources"]
    assert src["cpu"] == {
        "method": "measured",
        "source": "rapl",
        "measured_kwh": 0.03,
        "modelled_kwh": pytest.approx(modelled_cpu),
        "plausible": True,
    }
    assert src["memory"] == {"method": "modelled", "source": "green-algorithms-v3"}
    assert src["gpu"]["method"] == "modelled"
    assert d["warnings"] == []

    doc = client.get(f"/v1/receipts/{d['receipt_id']}", headers=auth).json()["data"]
    assert doc["receipt"]["results"]["energy_sources"] == src
    assert doc["receipt"]["inputs"]["measured_cpu_kwh"] == 0.03
    assert doc["kwh"] == d["kwh"]
    assert verify_document(doc, _pem(client)).ok


def test_a_far_off_measurement_is_kept_and_flagged(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(
        "/v1/report",
        headers=auth,
        json={**JOB, "measured_cpu_kwh": 5.0, "measured_memory_kwh": 0.001, "measured_gpu_kwh": 0.2},
    )
    d = r.json()["data"]
    src = d["energy_sources"]
    assert src["cpu"]["plausible"] is False  # 5 kWh vs 0.048 modelled: ×104
    assert src["memory"]["plausible"] is True  # 0.001 vs 0.003725: ×0.27
    assert src["gpu"] == {
        "method": "measured",
        "source": "nvml",
        "measured_kwh": 0.2,
        "modelled_kwh": 0.0,
        "plausible": False,
    }  # a GPU measured on a job that declared none
    assert len(d["warnings"]) == 2
    assert "measured cpu energy 5 kWh" in d["warnings"][0]
    assert d["breakdown"]["cpu_kwh"] == 5.0
    doc = client.get(f"/v1/receipts/{d['receipt_id']}", headers=auth).json()["data"]
    assert verify_document(doc, _pem(client)).ok


def test_modelled_jobs_keep_their_receipts_unchanged(client: TestClient, auth: dict[str, str]) -> None:
    d = client.post("/v1/report", headers=auth, json=JOB).json()["data"]
    assert d["kwh"] == pytest.approx(energy_kwh(60, 4, 10, 0, pue=1.5))
    assert all(v["method"] == "modelled" for v in d["energy_sources"].values())
    doc = client.get(f"/v1/receipts/{d['receipt_id']}", headers=auth).json()["data"]
    assert "energy_sources" not in doc["receipt"]["results"]  # absent in the signed receipt: all modelled


def test_batch_mixes_measured_and_modelled_jobs(client: TestClient, auth: dict[str, str]) -> None:
    jobs = [{**JOB, "job_id": "b-0"}, {**JOB, "job_id": "b-1", "measured_memory_kwh": 0.002}]
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 200, r.text
    out = r.json()["data"]
    assert out["total_kwh"] == pytest.approx(out["jobs"][0]["kwh"] + out["jobs"][1]["kwh"])
    assert out["jobs"][1]["kwh"] == pytest.approx((0.048 + 0.002) * 1.5)
    for j in out["jobs"]:
        doc = client.get(f"/v1/receipts/{j['receipt_id']}", headers=auth).json()["data"]
        assert verify_document(doc, _pem(client)).ok
    doc = client.get(f"/v1/receipts/{out['jobs'][1]['receipt_id']}", headers=auth).json()["data"]
    assert doc["receipt"]["results"]["energy_sources"]["memory"]["method"] == "measured"


@pytest.mark.parametrize(
    ("field", "value"), [("measured_cpu_kwh", -1), ("measured_gpu_kwh", 1e12), ("measured_memory_kwh", "x")]
)
def test_bad_measurements_are_400_naming_the_field(
    client: TestClient, auth: dict[str, str], field: str, value: object
) -> None:
    r = client.post("/v1/report", headers=auth, json={**JOB, field: value})
    assert r.status_code == 400
    assert field in r.text


def test_openapi_documents_the_measured_fields(client: TestClient) -> None:
    props = client.get("/openapi.json").json()["components"]["schemas"]["JobIn"]["properties"]
    for f in ("measured_cpu_kwh", "measured_memory_kwh", "measured_gpu_kwh"):
        assert "measured" in props[f]["description"]
