"""Public calculator (seed 003) over HTTP: every seed example, errors, rate limit, OpenAPI, URDB imports."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from powermeter.cost.commands import rates_app
from powermeter.infra.state import AppState
from powermeter.settings import Settings

SEED_TOU_RATE = {
    "flat_rate": 0.15,
    "currency": "USD",
    "tou_tiers": [
        {"name": "off-peak", "start_hour": 0, "end_hour": 9, "rate": 0.12},
        {"name": "peak", "start_hour": 9, "end_hour": 24, "rate": 0.30},
    ],
}
URDB_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "urdb" / "sample_export.json"


def test_seed_flat_example_returns_exactly_the_documented_body(client: TestClient) -> None:
    r = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}},
    )
    assert r.status_code == 200
    assert r.json() == {
        "daily_cost": 0.12,
        "monthly_cost": 3.65,
        "annual_cost": 43.8,
        "kwh_per_day": 0.8,
        "currency": "USD",
        "mode": "flat",
    }
    assert r.headers["RateLimit-Limit"] == "60"


def test_seed_tou_example_prices_the_overnight_window_per_tier(client: TestClient) -> None:
    r = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 100, "hours_per_day": 8, "schedule": [[22, 30]]}, "rateConfig": SEED_TOU_RATE},
    )
    assert r.status_code == 200
    assert r.json() == {
        "daily_cost": 0.132,
        "monthly_cost": 4.015,
        "annual_cost": 48.18,
        "kwh_per_day": 0.8,
        "currency": "USD",
        "mode": "tou",
    }


def test_breakdown_names_tiers_and_conventions(client: TestClient) -> None:
    r = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 100, "schedule": [[22, 30]]}, "rateConfig": SEED_TOU_RATE, "breakdown": True},
    )
    b = r.json()["breakdown"]
    assert {t["name"]: t["kwh_per_day"] for t in b["tiers"]} == {"off-peak": 0.6, "peak": 0.2}
    assert "annual = daily × 365" in b["conventions"]


def test_region_code_flat_and_tou(client: TestClient) -> None:
    flat = client.post("/calc/api/cost", json={"device": {"watts": 1000, "hours_per_day": 1}, "regionCode": "US-CA"})
    assert flat.status_code == 200
    body = flat.json()
    assert body["daily_cost"] == 0.2951  # EIA 2023 California average
    assert body["mode"] == "flat"
    assert "no schedule" in body["tou_note"]
    assert flat.headers.get("X-Dataset-Version") is None  # provenance is in breakdown / rates endpoints
    tou = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 1000, "schedule": [[17, 18]]}, "regionCode": "us-ca", "breakdown": True},
    )
    t = tou.json()
    assert t["mode"] == "tou"
    assert t["breakdown"]["tariff_id"] == "pge-e-tou-c"
    # PG&E E-TOU-C peak: 122 summer days at 0.5224, 243 winter days at 0.39757
    assert t["daily_cost"] == round((122 * 0.5224 + 243 * 0.39757) / 365, 4)


def test_named_tariff_can_be_chosen(client: TestClient) -> None:
    r = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 1000, "schedule": [[1, 2]]}, "regionCode": "US-CA", "tariffId": "pge-ev2-a"},
    )
    assert r.json()["daily_cost"] == 0.2256  # EV2-A off-peak, both seasons
    missing = client.post(
        "/calc/api/cost",
        json={"device": {"watts": 1, "hours_per_day": 1}, "regionCode": "US-CA", "tariffId": "octopus-go"},
    )
    assert missing.status_code == 404
    assert missing.json() == {"error": "tariff_not_found"}


def test_annual_kwh_and_power_states_modes(client: TestClient) -> None:
    a = client.post(
        "/calc/api/cost", json={"device": {"kwh_per_use": 1, "uses_per_week": 7}, "rateConfig": {"flat_rate": 0.2}}
    ).json()
    assert (a["mode"], a["kwh_per_day"], a["daily_cost"], a["annual_cost"]) == ("annual_kwh", 1.0, 0.2, 73.0)
    p = client.post(
        "/calc/api/cost",
        json={
            "device": {
                "power_states": [
                    {"name": "active", "watts": 120, "hours_per_day": 4},
                    {"name": "standby", "watts": 2, "hours_per_day": 20},
                ]
            },
            "rateConfig": {"flat_rate": 0.25},
        },
    ).json()
    assert (p["mode"], p["kwh_per_day"], p["daily_cost"]) == ("power_states", 0.52, 0.13)


def test_period_on_a_spring_forward_night(client: TestClient) -> None:
    r = client.post(
        "/calc/api/cost",
        json={
            "device": {"watts": 1000, "schedule": [[22, 30]]},
            "rateConfig": {**SEED_TOU_RATE, "timezone": "America/Los_Angeles"},
            "period": {"start": "2026-03-07", "end": "2026-03-08"},
        },
    )
    assert r.status_code == 200
    period = r.json()["period"]
    assert [d["hours"] for d in period["per_day"]] == [7.0, 8.0]
    assert period["kwh"] == 15.0
    assert period["cost"] == 1.2 + 1.32


def test_shift_savings_seed_example_finds_the_true_minimum(client: TestClient) -> None:
    r = client.post(
        "/calc/api/shift-savings",
        json={"device": {"watts": 1500, "hours_per_day": 3, "shiftable": True}, "regionCode": "US-CA"},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"current_cost", "optimal_cost", "optimal_window", "annual_savings", "currency"}
    assert body["currency"] == "USD"
    costs = [
        client.post(
            "/calc/api/cost", json={"device": {"watts": 1500, "schedule": [[s, s + 3]]}, "regionCode": "US-CA"}
        ).json()["daily_cost"]
        for s in range(24)
    ]
    assert body["optimal_cost"] == min(costs)
    start, end = body["optimal_window"]
    assert end - start == 3
    assert costs[int(start)] == min(costs)
    assert body["annual_savings"] == pytest.approx((body["current_cost"] - body["optimal_cost"]) * 365, abs=0.04)


def test_shift_savings_without_tou_data(client: TestClient) -> None:
    r = client.post(
        "/calc/api/shift-savings",
        json={"device": {"watts": 1500, "hours_per_day": 3, "shiftable": True}, "regionCode": "US-TX"},
    )
    assert r.json() == {"message": "no_tou_data", "savings": 0}


def test_battery_cost_seed_ev_example(client: TestClient) -> None:
    r = client.post(
        "/calc/api/battery-cost",
        json={
            "mode": "ev",
            "battery_kwh": 75,
            "miles_per_month": 1000,
            "efficiency_mi_per_kwh": 4,
            "rate_per_kwh": 0.15,
        },
    )
    assert r.status_code == 200
    body = r.json()
    # 1,000 mi ÷ 4 mi/kWh = 250 kWh into the battery, ÷ 0.88 charging efficiency from the wall
    assert body["kwh_to_battery_per_month"] == 250.0
    assert body["kwh_per_month"] == 284.0909
    assert body["monthly_cost"] == 42.6136
    assert body["annual_cost"] == 511.3636


def test_battery_cost_electronics_by_region(client: TestClient) -> None:
    r = client.post(
        "/calc/api/battery-cost",
        json={
            "mode": "electronics",
            "battery_mah": 5000,
            "voltage": 3.85,
            "charges_per_week": 7,
            "charger_efficiency": 80,
            "regionCode": "GB",
        },
    )
    body = r.json()
    assert body["currency"] == "GBP"
    assert body["daily_cost"] == round(5000 * 3.85 / 1000 / 0.8 / 1000 * 0.2573, 4)


def test_arbitrage_seed_example(client: TestClient) -> None:
    r = client.post("/calc/api/arbitrage", json={"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.40})
    body = r.json()
    assert body["per_cycle_savings"] == 3.6  # 13.5 × 0.40 − 13.5 / 0.9 × 0.12
    assert body["annual_savings"] == 1314.0
    assert body["profitable"] is True


def test_rates_endpoints(client: TestClient) -> None:
    r = client.get("/calc/api/rates/US-CA")
    assert r.status_code == 200
    body = r.json()
    assert body["flat_rate"] == 0.2951
    assert body["year"] == 2023
    assert body["tou_tiers"]
    assert body["source"]
    assert body["effective_date"] == "2023-01-01"
    assert r.headers["X-Dataset-Version"].startswith("sha256:")
    tariff = next(t for t in body["tariffs"] if t["id"] == "pge-e-tou-c")
    assert tariff["effective_date"] == "2026-03-01"
    index = client.get("/calc/api/rates/index").json()
    assert isinstance(index, list)
    assert len([i for i in index if i["regionCode"].startswith("US-")]) == 51
    unknown = client.get("/calc/api/rates/XX-NOWHERE")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "region_not_found"}
    cost_unknown = client.post("/calc/api/cost", json={"device": {"watts": 1, "hours_per_day": 1}, "regionCode": "ZZ"})
    assert cost_unknown.status_code == 404
    assert cost_unknown.json() == {"error": "region_not_found"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"device": {"watts": 100, "schedule": [[22, 20]]}, "rateConfig": {"flat_rate": 0.15}},
            "device.schedule[0][1]",
            "end_hour",
        ),
        (
            {
                "device": {"watts": 100, "schedule": [[1, 2]]},
                "rateConfig": {
                    "tou_tiers": [
                        {"name": "a", "start_hour": 0, "end_hour": 12, "rate": 1},
                        {"name": "b", "start_hour": 11, "end_hour": 24, "rate": 2},
                    ]
                },
            },
            "rateConfig.tou_tiers[1]",
            "overlaps",
        ),
        ({"device": {"watts": 100, "hours_per_day": 1}}, "rateConfig", "regionCode"),
        ({"rateConfig": {"flat_rate": 1}}, "device", "required"),
        (
            {"device": {"watts": 1, "hours_per_day": 1}, "rateConfig": {"flat_rate": 1}, "regionCode": "US-CA"},
            "rateConfig",
            "not both",
        ),
        ({"device": {"watts": "lots", "hours_per_day": 1}, "rateConfig": {"flat_rate": 1}}, "device.watts", "number"),
    ],
)
def test_invalid_input_is_a_clear_400_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    r = client.post("/calc/api/cost", json=body)
    assert r.status_code == 400
    err = r.json()
    assert err["field"] == field
    assert err["error"].startswith(field)
    assert words in err["error"]


def test_malformed_json_is_a_400(client: TestClient) -> None:
    r = client.post("/calc/api/cost", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]


def test_sixty_requests_a_minute_per_ip(client: TestClient) -> None:
    body = {"battery_wh": 1000, "charge_rate": 0.1, "discharge_rate": 0.2}
    for _ in range(60):
        assert client.post("/calc/api/arbitrage", json=body).status_code == 200
    r = client.post("/calc/api/arbitrage", json=body)
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 60
    assert r.json() == {"error": "rate_limited", "retry_after": retry}


def test_openapi_31_for_the_calculator_only(client: TestClient) -> None:
    spec = client.get("/calc/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"] == [{"url": "/calc"}]
    assert set(spec["paths"]) == {
        "/api/cost",
        "/api/shift-savings",
        "/api/battery-cost",
        "/api/arbitrage",
        "/api/rates/index",
        "/api/rates/{regionCode}",
        "/api/bill",
        "/api/compare",
    }
    cost_op = spec["paths"]["/api/cost"]["post"]
    examples = cost_op["requestBody"]["content"]["application/json"]["examples"]
    assert examples["flat"]["value"] == {
        "device": {"watts": 100, "hours_per_day": 8},
        "rateConfig": {"flat_rate": 0.15},
    }
    assert cost_op["responses"]["200"]["content"]["application/json"]["example"]["annual_cost"] == 43.8
    assert {"400", "429"} <= set(cost_op["responses"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["paths"]["/api/rates/{regionCode}"]["get"]["responses"]["404"]
    # every example in the spec is accepted by the live endpoint
    for ex in examples.values():
        assert client.post("/calc/api/cost", json=ex["value"]).status_code == 200


def test_imported_urdb_tariff_is_served(
    client: TestClient, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERMETER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("POWERMETER_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("POWERMETER_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(rates_app, ["import-urdb", str(URDB_FILE), "--region", "US-CA"])
    assert result.exit_code == 0, result.output
    assert "refused" in result.output
    assert "kWh/kW" in result.output
    client.app.state.services.rates.refresh_now()
    detail = client.get("/calc/api/rates/US-CA").json()
    ids = {t["id"] for t in detail["tariffs"]}
    assert "urdb-66ccb7bfa7d4ef64fc07ad6b" in ids
    r = client.post(
        "/calc/api/cost",
        json={
            "device": {"watts": 1000, "schedule": [[17, 18]]},
            "regionCode": "US-CA",
            "tariffId": "urdb-66ccb7bfa7d4ef64fc07ad6b",
        },
    )
    assert r.status_code == 200
    # summer weekdays 0.60484, summer weekends 0.49078, winter 0.53413 (SCE TOU-D-4-9PM, 16–21)
    expected = (122 * (5 * 0.60484 + 2 * 0.49078) / 7 + 243 * 0.53413) / 365
    assert r.json()["daily_cost"] == round(expected, 4)
    # importing again replaces instead of duplicating
    again = CliRunner().invoke(rates_app, ["import-urdb", str(URDB_FILE), "--region", "US-CA"])
    assert "replaced" in again.output


def test_import_of_an_unreadable_file_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = CliRunner().invoke(rates_app, ["import-urdb", str(bad)])
    assert result.exit_code == 2
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"items": [{"label": str(uuid.uuid4())}]}))
    result = CliRunner().invoke(rates_app, ["import-urdb", str(empty), "--region", "US-CA", "--dry-run"])
    assert result.exit_code == 1
    assert "energyratestructure" in result.output
