"""The daily kWh cap (refused whole), exact usage stats, and GET /v1/locations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from powermeter.data.locations import load_locations
from powermeter.infra.clock import FrozenClock
from tests.conftest import MakeKey


def _job(job_id: str, kwh_at_pue_1: float) -> dict[str, object]:
    # 1000 cores × 12 W = 12 kW at PUE 1: duration in minutes gives the kWh exactly
    return {
        "job_id": job_id,
        "duration_minutes": kwh_at_pue_1 / 12 * 60,
        "cpu_cores": 1000,
        "pue": 1.0,
        "geo_iso": "US",
    }


def _stats(client: TestClient, auth: dict[str, str]) -> dict[str, object]:
    data: dict[str, object] = client.get("/v1/api-keys/stats", headers=auth).json()["data"]
    return data


def test_the_daily_kwh_cap_refuses_the_whole_request(
    client: TestClient, auth: dict[str, str], clock: FrozenClock
) -> None:
    # dev plan: 50 kWh/day (seed 000)
    r = client.post("/v1/batch", headers=auth, json={"jobs": [_job("a", 24), _job("b", 24)]})
    assert r.status_code == 200
    assert r.json()["data"]["total_kwh"] == pytest.approx(48)
    # 48 + 3 > 50: refused whole, nothing stored, counter unchanged
    r = client.post("/v1/batch", headers=auth, json={"jobs": [_job("c", 1), _job("d", 2)]})
    assert r.status_code == 429
    body = r.json()
    assert body["error_code"] == "USAGE_CAP_EXCEEDED"
    assert "50" in body["detail"]
    assert int(r.headers["Retry-After"]) == 12 * 3600  # until 00:00 UTC
    assert client.get("/v1/receipts?job_id=c", headers=auth).json()["data"]["total"] == 0
    assert _stats(client, auth)["daily_usage_kwh"] == pytest.approx(48)
    # exactly up to the cap is allowed
    assert client.post("/v1/report", headers=auth, json=_job("e", 2)).status_code == 200
    assert _stats(client, auth)["daily_usage_kwh"] == pytest.approx(50)
    assert client.post("/v1/report", headers=auth, json=_job("f", 0.001)).status_code == 429
    # the cap resets at 00:00 UTC
    clock.advance(timedelta(hours=12))
    assert client.post("/v1/report", headers=auth, json=_job("f", 1)).status_code == 200
    assert _stats(client, auth)["daily_usage_kwh"] == pytest.approx(1)


def test_stats_are_exact(client: TestClient, auth: dict[str, str], make_key: MakeKey) -> None:
    make_key(name="second key")  # same account: two active keys
    for i in range(3):
        assert client.post("/v1/report", headers=auth, json=_job(f"s{i}", 0.1)).status_code == 200
    stats = _stats(client, auth)
    # 3 reports + this stats call; the first stats call counts itself
    assert stats == {
        "daily_api_calls": 4,
        "daily_limit": 1000,
        "remaining_calls": 996,
        "daily_usage_kwh": pytest.approx(0.3),
        "daily_kwh_limit": 50.0,
        "active_keys": 2,
    }
    # a refused request is not counted as energy
    client.post("/v1/report", headers=auth, json={**_job("bad", 1), "geo_iso": "nowhere"})
    assert _stats(client, auth)["daily_usage_kwh"] == pytest.approx(0.3)


def test_locations_lists_every_accepted_code(client: TestClient) -> None:
    r = client.get("/v1/locations")  # public: the 400 for an unknown location points here
    assert r.status_code == 200
    data = r.json()["data"]
    index = load_locations()
    assert data["total"] == len(index) == len(data["locations"])
    assert data["version"] == index.version
    us = next(x for x in data["locations"] if x["code"] == "US")
    assert us["aliases"] == ["USA"]
    assert {"intensity_g_per_kwh", "year", "source", "kind"} <= set(us)
    clouds = client.get("/v1/locations?kind=cloud&provider=azure").json()["data"]["locations"]
    assert clouds
    assert all(x["provider"] == "azure" and x["kind"] == "cloud" for x in clouds)
    assert client.get("/v1/locations?kind=planet").status_code == 400
