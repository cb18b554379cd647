"""Devices & profile API (seed 001) over HTTP: auth, scopes, CRUD, catalog snapshots, profile, costs, limits."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import MakeKey

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SEED_FIELDS = {
    "id",
    "name",
    "catalog_device_slug",
    "watts",
    "hours_per_day",
    "schedule",
    "shiftable",
    "metadata",
    "created_at",
    "updated_at",
}


@pytest.fixture
def h(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key}


def _add(client: TestClient, h: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/me/devices", json=body, headers=h)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_missing_or_bad_key_is_401_invalid_api_key(client: TestClient) -> None:
    r = client.get("/api/v1/me/devices")
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_api_key"}
    r = client.get("/api/v1/me/devices", headers={"X-API-Key": "pcalc_your_token_here"})
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_api_key"}


def test_seed_example_nas_from_the_catalog(client: TestClient, h: dict[str, str], api_key: str) -> None:
    assert client.get("/api/v1/me/devices", headers=h).json() == []
    dev = _add(
        client, h, name="NAS", catalog_device_slug="synology-ds923", watts=30, hours_per_day=24, schedule=[[0, 24]]
    )
    assert set(dev) == SEED_FIELDS
    assert str(uuid.UUID(dev["id"])) == dev["id"]
    assert dev["watts"] == 30
    assert dev["schedule"] == [[0, 24]]
    assert dev["shiftable"] is False
    assert dev["metadata"] == {}
    assert dev["created_at"] == "2026-11-22T12:00:00Z"
    assert TS.match(dev["updated_at"])
    # the seed's jq line works on the list; Bearer works as well as X-API-Key
    listed = client.get("/api/v1/me/devices", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert [f"{d['name']}: {d['watts']}W x {d['hours_per_day']}h/day" for d in listed] == ["NAS: 30W x 24h/day"]


def test_adding_from_the_catalog_snapshots_its_watts(client: TestClient, h: dict[str, str]) -> None:
    dev = _add(client, h, catalog_device_slug="ps5", hours_per_day=3)
    assert dev["name"] == "Sony PlayStation 5 (launch model)"
    assert dev["watts"] == 203
    assert dev["catalog_device_slug"] == "ps5"
    changed = client.patch(
        f"/api/v1/me/devices/{dev['id']}", json={"catalog_device_slug": "xbox-series-x"}, headers=h
    ).json()
    assert changed["watts"] == 180  # a new catalog entry brings its own snapshot
    r = client.post("/api/v1/me/devices", json={"catalog_device_slug": "toaster-9000", "hours_per_day": 1}, headers=h)
    assert r.status_code == 400
    assert r.json()["field"] == "catalog_device_slug"


def test_crud_round_trip(client: TestClient, h: dict[str, str], clock: Any) -> None:
    dev = _add(
        client, h, name="Dishwasher", watts=1800, hours_per_day=1.5, shiftable=True, metadata={"room": "kitchen"}
    )
    did = dev["id"]
    assert client.get(f"/api/v1/me/devices/{did}", headers=h).json() == dev
    clock.advance(timedelta(hours=1))
    r = client.patch(f"/api/v1/me/devices/{did}", json={"schedule": [[22, 30]], "hours_per_day": 2}, headers=h)
    assert r.status_code == 200
    patched = r.json()
    assert patched["schedule"] == [[22, 30]]
    assert patched["hours_per_day"] == 2
    assert patched["metadata"] == {"room": "kitchen"}
    assert patched["created_at"] == dev["created_at"]
    assert patched["updated_at"] == "2026-11-22T13:00:00Z"
    assert client.delete(f"/api/v1/me/devices/{did}", headers=h).status_code == 204
    gone = client.get(f"/api/v1/me/devices/{did}", headers=h)
    assert gone.status_code == 404
    assert gone.json() == {"error": "device_not_found"}
    assert client.get("/api/v1/me/devices/not-a-uuid", headers=h).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "watts": 10, "schedule": [[22, 20]]}, "schedule[0][1]"),
        ({"name": "x", "watts": 10, "schedule": [[0, 8], [6, 10]]}, "schedule"),
        ({"name": "x", "watts": 10, "hours_per_day": 9, "schedule": [[22, 30]]}, "hours_per_day"),
        ({"name": "x", "watts": 10}, "hours_per_day"),
        ({"name": "x", "hours_per_day": 1}, "watts"),
        ({"name": "x", "watts": -5, "hours_per_day": 1}, "watts"),
        ({"watts": 5, "hours_per_day": 1}, "name"),
    ],
)
def test_device_validation_is_a_400_naming_the_field(
    client: TestClient, h: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/me/devices", json=body, headers=h)
    assert r.status_code == 400
    text = r.text
    assert field in text


def test_scopes_are_enforced(client: TestClient, make_key: MakeKey) -> None:
    reader = {"X-API-Key": make_key(email="r@example.com", scopes=["devices:read"])}
    assert client.get("/api/v1/me/devices", headers=reader).status_code == 200
    r = client.post("/api/v1/me/devices", json={"name": "x", "watts": 1, "hours_per_day": 1}, headers=reader)
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    other = {"X-API-Key": make_key(email="o@example.com", scopes=["report:write"])}
    assert client.get("/api/v1/me/devices", headers=other).status_code == 403


def test_accounts_do_not_see_each_others_devices(client: TestClient, h: dict[str, str], make_key: MakeKey) -> None:
    dev = _add(client, h, name="TV", watts=120, hours_per_day=4)
    stranger = {"X-API-Key": make_key(email="stranger@example.com")}
    assert client.get("/api/v1/me/devices", headers=stranger).json() == []
    assert client.get(f"/api/v1/me/devices/{dev['id']}", headers=stranger).status_code == 404
    assert client.delete(f"/api/v1/me/devices/{dev['id']}", headers=stranger).status_code == 404


def test_profile_is_empty_then_stored(client: TestClient, h: dict[str, str]) -> None:
    r = client.get("/api/v1/me/profile", headers=h)
    assert r.status_code == 200
    assert r.json() == {}
    r = client.put("/api/v1/me/profile", json={"region_code": "us-ca", "rate_config": None}, headers=h)
    assert r.status_code == 200
    assert r.json() == {"region_code": "US-CA", "rate_config": None, "created_at": "2026-11-22T12:00:00Z"}
    assert client.get("/api/v1/me/profile", headers=h).json()["region_code"] == "US-CA"
    bad_region = client.put("/api/v1/me/profile", json={"region_code": "XX-NOWHERE"}, headers=h)
    assert bad_region.status_code == 400
    assert bad_region.json()["field"] == "region_code"
    bad_rate = client.put(
        "/api/v1/me/profile",
        json={"rate_config": {"tou_tiers": [{"start_hour": 0, "end_hour": 10, "rate": 0.1}]}},
        headers=h,
    )
    assert bad_rate.status_code == 400
    assert bad_rate.json()["field"] == "rate_config.tou_tiers"


def test_a_rate_config_with_an_integer_past_64_bits_is_a_400_naming_the_field(
    client: TestClient, h: dict[str, str]
) -> None:
    # found by schemathesis: orjson refuses such integers, which used to surface as a 500
    for cfg, field in (
        ({"odd": {"x": 20337536939421596102164480}}, "rate_config.odd"),
        ({"flat_rate": 20337536939421596102164480}, "rate_config.flat_rate"),
    ):
        r = client.put("/api/v1/me/profile", headers=h, json={"rate_config": cfg})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field


def test_costs_per_device_and_total(client: TestClient, h: dict[str, str]) -> None:
    no_rate = client.get("/api/v1/me/costs", headers=h)
    assert no_rate.status_code == 400
    client.put("/api/v1/me/profile", json={"rate_config": {"flat_rate": 0.15}}, headers=h)
    _add(client, h, name="NAS", watts=30, hours_per_day=24)
    _add(client, h, name="TV", watts=100, hours_per_day=8)
    body = client.get("/api/v1/me/costs", headers=h).json()
    assert body["currency"] == "USD"
    assert sorted((d["name"], d["daily_cost"], d["annual_cost"]) for d in body["devices"]) == [
        ("NAS", 0.108, 39.42),
        ("TV", 0.12, 43.8),
    ]
    assert body["total"] == {"kwh_per_day": 1.52, "daily_cost": 0.228, "monthly_cost": 6.935, "annual_cost": 83.22}


def test_costs_under_a_region_tou_tariff_and_fixed_charge(client: TestClient, h: dict[str, str]) -> None:
    client.put("/api/v1/me/profile", json={"region_code": "US-CA"}, headers=h)
    _add(client, h, name="EV", watts=7200, schedule=[[0, 4]], shiftable=True)
    body = client.get("/api/v1/me/costs", params={"include_fixed_charges": "true"}, headers=h).json()
    assert body["tariff_id"] == "pge-e-tou-c"
    (ev,) = body["devices"]
    assert ev["mode"] == "tou"
    off_peak = (122 * 0.3994 + 243 * 0.36757) / 365
    assert ev["daily_cost"] == round(7.2 * 4 * off_peak, 4)
    assert body["fixed_daily_charge"] == 0.1971
    assert body["total"]["daily_cost"] == round(7.2 * 4 * off_peak + 0.19713, 4)


def test_block_tiers_apply_to_the_household_and_device_costs_add_up(client: TestClient, h: dict[str, str]) -> None:
    client.put("/api/v1/me/profile", json={"region_code": "AE-DU"}, headers=h)
    _add(client, h, name="AC", watts=3000, hours_per_day=24)  # 72 kWh/day ≈ 2,190 kWh/month
    _add(client, h, name="Fridge", watts=300, hours_per_day=24)
    body = client.get("/api/v1/me/costs", headers=h).json()
    month_kwh = (72 + 7.2) * 365 / 12
    expected_month = 2000 * 0.29 + (month_kwh - 2000) * 0.34
    assert body["total"]["monthly_cost"] == pytest.approx(expected_month, abs=1e-3)
    assert sum(d["monthly_cost"] for d in body["devices"]) == pytest.approx(body["total"]["monthly_cost"], abs=2e-4)
    # the region override shows the same devices under another rate
    other = client.get("/api/v1/me/costs", params={"region_code": "US-WA"}, headers=h).json()
    assert other["total"]["daily_cost"] == round(79.2 * 0.1098, 4)


def test_catalog_lists_fifty_devices_with_sources(client: TestClient, h: dict[str, str]) -> None:
    r = client.get("/api/v1/catalog/devices", headers=h)
    assert r.status_code == 200
    devices = r.json()["devices"]
    assert len(devices) >= 50
    assert all(d["source"] and d["typical_watts"] > 0 for d in devices)
    nets = client.get("/api/v1/catalog/devices", params={"category": "networking"}, headers=h).json()["devices"]
    assert {d["slug"] for d in nets} >= {"synology-ds923", "router-fritzbox-6690"}
    assert client.get("/api/v1/catalog/devices").status_code == 401


def test_sixty_requests_a_minute_per_token(client: TestClient, h: dict[str, str], make_key: MakeKey) -> None:
    for _ in range(60):
        assert client.get("/api/v1/me/profile", headers=h).status_code == 200
    r = client.get("/api/v1/me/profile", headers=h)
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert r.json() == {"error": "rate_limited", "retry_after": retry}
    # another token has its own budget
    other = {"X-API-Key": make_key(email="second@example.com")}
    assert client.get("/api/v1/me/profile", headers=other).status_code == 200
