"""Every bad input is a 4xx in its family's shape naming the field and its range (issue 14 items 1, 10, 13)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import START

INFERENCE = {"provider": "Google", "model": "gemini-3-pro", "prompt_tokens": 10, "completion_tokens": 10}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/calc/api/arbitrage", {"charge_rate": 1e300, "discharge_rate": 0.1, "battery_wh": 1e300}, "battery_wh"),
        ("/calc/api/arbitrage", {"charge_rate": 1e137, "discharge_rate": 0.1, "battery_wh": 100}, "charge_rate"),
        (
            "/calc/api/battery-cost",
            {
                "mode": "ev",
                "battery_kwh": 1e300,
                "miles_per_month": 1000,
                "efficiency_mi_per_kwh": 4,
                "rate_per_kwh": 0.15,
            },
            "battery_kwh",
        ),
        (
            "/calc/api/battery-cost",
            {
                "mode": "ev",
                "battery_kwh": 75,
                "miles_per_month": 1e7,
                "efficiency_mi_per_kwh": 1e-300,
                "rate_per_kwh": 0.15,
            },
            "efficiency_mi_per_kwh",
        ),
        (
            "/calc/api/cost",
            {"device": {"watts": 1e300, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}},
            "device.watts",
        ),
        (
            "/calc/api/cost",
            {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": "1e999999"}},
            "rateConfig.flat_rate",
        ),
    ],
)
def test_huge_finite_numbers_on_the_calculator_are_400_naming_field_and_range(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["field"] == field
    assert doc["error"].startswith(field)
    assert "between" in doc["error"]
    assert (
        client.post(
            "/calc/api/arbitrage", json={"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.4}
        ).status_code
        == 200
    )  # same connection


def test_v1_out_of_range_integers_and_dates_are_400(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/inference", headers=auth, json={**INFERENCE, "startTimeMs": 2**70})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "startTimeMs"
    assert "253402300799999" in r.json()["detail"]
    r = client.get("/v1/receipts?offset=9223372036854775808", headers=auth)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "offset"
    r = client.get("/v1/reports/emissions?end=9999-12-31", headers=auth)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "end"
    assert "9999-12-30" in r.json()["detail"]


def test_end_before_start_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    t0 = int(START.timestamp() * 1000) - 60_000  # a minute before the tests' clock (records are booked then)
    r = client.post("/v1/inference", headers=auth, json={**INFERENCE, "startTimeMs": t0 + 2000, "endTimeMs": t0 + 1000})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "endTimeMs"
    assert "before startTimeMs" in r.json()["detail"]
    fine = {**INFERENCE, "startTimeMs": t0 + 1000, "endTimeMs": t0 + 2000}
    ok = client.post("/v1/inference", headers=auth, json=fine)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/report", {"job_id": "a", "duration_minutes": True, "geo_iso": "US"}, "duration_minutes"),
        ("/v1/report", {"job_id": "a", "duration_minutes": 5, "cpu_cores": False, "geo_iso": "US"}, "cpu_cores"),
        ("/v1/inference", {**INFERENCE, "prompt_tokens": True}, "prompt_tokens"),
    ],
)
def test_json_booleans_are_not_numbers(
    client: TestClient, auth: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    r = client.post(path, headers=auth, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("job_id", ["a\x00b", "web\x1b[2J\x1b]0;pwned\x07", "line\nbreak", "c1\x9bx"])
def test_control_characters_in_job_ids_are_refused(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    r = client.post("/v1/report", headers=auth, json={"job_id": job_id, "duration_minutes": 5, "geo_iso": "US"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "job_id"
    assert "control characters" in r.json()["detail"]
    r = client.post(
        "/v1/batch", headers=auth, json={"jobs": [{"job_id": job_id, "duration_minutes": 5, "geo_iso": "US"}]}
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "jobs[0].job_id"


def test_401_names_the_scheme(client: TestClient) -> None:
    for path in ("/v1/me", "/api/v1/me/tokens"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="powermeter"'
    r = client.get("/v1/me", headers={"Authorization": "Bearer pm_live_wrong"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/inference", {**INFERENCE, "model": "gpt\x1b[31m"}, "model"),
        ("/v1/inference", {**INFERENCE, "source": "dom\x00"}, "source"),
        ("/api/v1/me/devices", {"name": "NAS\x1b]0;pwned\x07", "watts": 30, "hours_per_day": 24}, "name"),
    ],
)
def test_control_characters_in_other_names_are_refused(
    client: TestClient, auth: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    r = client.post(path, headers=auth, json=body)
    assert r.status_code == 400, r.text
    assert "control characters" in r.text
    assert field in r.text


def test_dashboard_refuses_a_key_name_with_escape_sequences(client: TestClient) -> None:
    from tests.integration.web.helpers import signup

    csrf = signup(client)
    r = client.post(
        "/dashboard/settings/keys",
        data={"csrf_token": csrf, "name": "web\x1b[2J\x1b]0;pwned\x07key", "scopes": ["routing"]},
    )
    assert r.status_code == 400
    assert "control characters" in r.text
