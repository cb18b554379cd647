"""The dashboard's Bills page: upload a Green Button file, see the monthly bill and the comparison."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.integration.web.helpers import csrf_of, signup

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meter"


def test_bills_page_bills_an_upload_and_compares_the_region(client: TestClient) -> None:
    signup(client)
    page = client.get("/dashboard/bills")
    assert page.status_code == 200
    assert 'href="/dashboard/bills" aria-current="page"' in page.text
    data = (FIXTURES / "pge_opower.csv").read_bytes()
    r = client.post(
        "/dashboard/bills",
        data={"csrf_token": csrf_of(page.text), "tariff": "pge-e-tou-c", "region": "US-CA"},
        files={"file": ("pge_electric_interval_data.csv", data, "text/csv")},
    )
    assert r.status_code == 200, r.text
    api = client.post("/calc/api/bill?tariffId=pge-e-tou-c", content=data, headers={"Content-Type": "text/csv"})
    total = re.search(r'data-testid="bill-total">([0-9.]+) USD<', r.text)
    assert total
    assert float(total.group(1)) == round(api.json()["total"], 2)
    assert 'data-chart="chart-months-data"' in r.text
    assert 'data-chart="chart-compare-data"' in r.text
    for tid in ("pge-e-tou-c", "pge-ev2-a", "sce-tou-d-4-9pm", "sdge-tou-dr1"):
        assert tid in r.text
    assert "2026-10" in r.text
    assert "2026-11" in r.text


def test_bills_page_shows_a_bad_file_error_with_its_line(client: TestClient) -> None:
    signup(client)
    page = client.get("/dashboard/bills")
    r = client.post(
        "/dashboard/bills",
        data={"csrf_token": csrf_of(page.text), "tariff": "pge-e-tou-c", "region": ""},
        files={"file": ("bad.csv", b"timestamp,kwh\n2026-06-01T00:00:00Z,1\nnot-a-time,2\n", "text/csv")},
    )
    assert r.status_code == 400
    assert 'role="alert"' in r.text
    assert "line 3" in r.text


def test_bills_page_needs_a_session_and_a_csrf_token(client: TestClient) -> None:
    r = client.get("/dashboard/bills", follow_redirects=False)
    assert r.status_code == 303
    signup(client)
    r = client.post(
        "/dashboard/bills",
        data={"tariff": "pge-e-tou-c"},
        files={"file": ("a.csv", b"timestamp,kwh\n", "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code in (400, 403)
