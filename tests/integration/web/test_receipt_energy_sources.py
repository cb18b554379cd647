"""The dashboard's receipt page says, per component, whether its energy was measured or modelled."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from .helpers import create_key, signup

JOB = {"job_id": "rapl-001", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 16, "geo_iso": "DE"}


def _receipt_id(client: TestClient, key: str, body: dict[str, object]) -> str:
    r = client.post("/v1/report", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["receipt_id"])


def _source(html: str, comp: str) -> str:
    m = re.search(rf'data-testid="source-{comp}">(.*?)</dd>', html, re.S)
    assert m, html
    return m.group(1)


def test_receipt_page_shows_measured_and_modelled_components(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf)
    measured = _receipt_id(client, key, {**JOB, "measured_cpu_kwh": 0.04, "measured_gpu_kwh": 3.0})
    page = client.get(f"/dashboard/receipts/{measured}").text
    assert _source(page, "cpu").startswith("measured (rapl): 0.04")
    assert "implausible" not in _source(page, "cpu")
    assert "measured (nvml)" in _source(page, "gpu")
    assert "implausible" in _source(page, "gpu")
    assert _source(page, "memory") == "modelled (Green Algorithms)"

    modelled = _receipt_id(client, key, {**JOB, "job_id": "plain-001"})
    page = client.get(f"/dashboard/receipts/{modelled}").text
    assert all(_source(page, c) == "modelled (Green Algorithms)" for c in ("cpu", "gpu", "memory"))
