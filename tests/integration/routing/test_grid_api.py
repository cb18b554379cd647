"""/v1/grid/* and the Carbon Aware SDK-compatible endpoints."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.data.locations import load_locations
from powermeter.infra.clock import FrozenClock
from tests.conftest import MakeKey
from tests.integration.routing.conftest import DAY, bearer, key_for

LOC = load_locations()
TIMESPAN = re.compile(r"^(\d+\.)?\d{2}:\d{2}:\d{2}$")


def annual(code: str) -> float:
    loc = LOC.resolve(code)
    assert loc is not None
    return loc.intensity_g_per_kwh


def ramp(h: int) -> float:
    return 100.0 + 10 * h


# ---------------------------------------------------------------------- /v1/grid


def test_grid_regions_lists_what_the_router_sees(client: TestClient, make_key: MakeKey) -> None:
    assert client.get("/v1/grid/regions").status_code == 401
    r = client.get("/v1/grid/regions", headers=bearer(make_key(plan="dev")))
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["provider"] == "static"
    assert data["total"] == len(LOC.all())
    by_code = {x["code"]: x for x in data["regions"]}
    caiso = by_code["CAISO"]
    assert caiso["annual_intensity_g_per_kwh"] == annual("CAISO")
    assert caiso["site"]["latitude"] == pytest.approx(37.34)
    assert caiso["available_on_plan"] is True
    assert by_code["PJM"]["available_on_plan"] is False  # dev: California ISO only
    assert by_code["aws:us-west-1"]["available_on_plan"] is True
    grids = client.get("/v1/grid/regions?kind=grid", headers=bearer(make_key(email="c@x.io", plan="core"))).json()
    assert {x["code"] for x in grids["data"]["regions"]} == {
        "CAISO",
        "BPA",
        "ERCOT",
        "PJM",
        "MISO",
        "NYISO",
        "ISONE",
        "SPP",
    }
    assert all(x["available_on_plan"] for x in grids["data"]["regions"])


def test_grid_intensity_static(client: TestClient, make_key: MakeKey) -> None:
    r = client.get("/v1/grid/intensity?region=us-west-2", headers=bearer(make_key()))
    assert r.status_code == 200
    cur = r.json()["data"]["current"]
    assert cur["region"] == "aws:us-west-2"
    assert cur["intensity_g_per_kwh"] == annual("aws:us-west-2")
    assert (cur["provider"], cur["signal_type"], cur["is_estimated"]) == ("static", "average", True)
    r = client.get("/v1/grid/intensity?region=nowhere", headers=bearer(make_key()))
    assert r.status_code == 400
    assert r.json()["error_code"] == "UNKNOWN_REGION"


def test_grid_intensity_history_and_forecast_from_csv(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": ramp})
    h = bearer(key_for(c, clock))
    clock.set(DAY + timedelta(hours=5, minutes=10))
    params = {
        "region": "CAISO",
        "start": (DAY + timedelta(hours=2)).isoformat(),
        "end": (DAY + timedelta(hours=4)).isoformat(),
        "horizon_hours": 3,
    }
    data = c.get("/v1/grid/intensity", params=params, headers=h).json()["data"]
    assert data["current"]["intensity_g_per_kwh"] == 150.0
    assert data["current"]["timestamp"] == "2026-11-22T05:00:00Z"
    assert [p["intensity_g_per_kwh"] for p in data["history"]] == [120.0, 130.0]
    assert [p["intensity_g_per_kwh"] for p in data["forecast"]] == [150.0, 160.0, 170.0]
    r = c.get("/v1/grid/intensity?region=CAISO&start=2026-11-22T04:00:00Z&end=2026-11-22T03:00:00Z", headers=h)
    assert r.status_code == 400


# ---------------------------------------------------------------------- Carbon Aware SDK subset


def test_casdk_bylocations_and_best_current(client: TestClient) -> None:
    r = client.get("/emissions/bylocations?location=CAISO&location=BPA&location=eastus")
    assert r.status_code == 200
    rows = r.json()
    assert [x["location"] for x in rows] == ["CAISO", "BPA", "eastus"]  # names echoed as asked
    assert rows[0]["rating"] == annual("CAISO")
    assert rows[2]["rating"] == annual("azure:eastus")
    for x in rows:
        assert set(x) == {"location", "time", "rating", "duration"}
        assert TIMESPAN.match(x["duration"])
        assert x["time"].endswith("+00:00")
    best = client.get("/emissions/bylocations/best?location=CAISO&location=BPA&location=PJM").json()
    assert best == [next(x for x in rows if x["location"] == "BPA")]
    one = client.get("/emissions/bylocation?location=PJM").json()
    assert one[0]["rating"] == annual("PJM")


def test_casdk_time_ranges_and_ties(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": ramp, "BPA": lambda h: 130.0})
    clock.set(DAY + timedelta(hours=12))
    rows = c.get(
        "/emissions/bylocations",
        params=[
            ("location", "CAISO"),
            ("location", "BPA"),
            ("time", "2026-11-22T01:00:00Z"),
            ("toTime", "2026-11-22T04:00:00Z"),
        ],
    ).json()
    caiso = [x for x in rows if x["location"] == "CAISO"]
    assert [x["rating"] for x in caiso] == [110.0, 120.0, 130.0]
    assert caiso[0]["time"] == "2026-11-22T01:00:00+00:00"
    assert caiso[0]["duration"] == "01:00:00"
    best = c.get(
        "/emissions/bylocations/best",
        params=[
            ("location", "CAISO"),
            ("location", "BPA"),
            ("time", "2026-11-22T01:00:00Z"),
            ("toTime", "2026-11-22T04:00:00Z"),
        ],
    ).json()
    assert {x["rating"] for x in best} == {110.0}
    # A tie between CAISO (03:00) and BPA (every hour) keeps both, as the SDK does.
    tie = c.get(
        "/emissions/bylocations/best",
        params=[("location", "CAISO"), ("location", "BPA"), ("time", "2026-11-22T03:30:00Z")],
    ).json()
    assert sorted(x["location"] for x in tie) == ["BPA", "CAISO"]
    empty = c.get("/emissions/bylocations", params=[("location", "CAISO"), ("time", "2027-01-01T00:00:00Z")])
    assert empty.status_code == 204


def test_casdk_current_forecast_shape_and_optimal_window(csv_client: Any, clock: FrozenClock) -> None:
    # Valley at 14:00–15:00 then up again: the best 2-hour window starts at 14:00.
    def vshape(h: int) -> float:
        return float(abs(h - 14) * 10 + 100)

    c = csv_client({"CAISO": vshape})
    clock.set(DAY + timedelta(hours=10))
    r = c.get("/emissions/forecasts/current?location=CAISO&windowSize=120&dataEndAt=2026-11-22T20:00:00Z")
    assert r.status_code == 200
    (fc,) = r.json()
    assert set(fc) == {
        "generatedAt", "requestedAt", "location", "dataStartAt", "dataEndAt", "windowSize", "optimalDataPoints",
        "forecastData",
    }  # fmt: skip
    assert fc["location"] == "CAISO"
    assert fc["windowSize"] == 120
    assert fc["requestedAt"] == "2026-11-22T10:00:00+00:00"
    assert set(fc["forecastData"][0]) == {"location", "timestamp", "duration", "value"}
    optimal = fc["optimalDataPoints"]
    assert [p["timestamp"] for p in optimal] == ["2026-11-22T13:00:00+00:00", "2026-11-22T14:00:00+00:00"]
    assert optimal[0]["value"] == pytest.approx(105.0)
    assert optimal[0]["duration"] == 120


def test_casdk_average_and_locations(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": ramp})
    clock.set(DAY + timedelta(hours=12))
    avg = c.get(
        "/emissions/average-carbon-intensity",
        params={"location": "CAISO", "startTime": "2026-11-22T01:30:00Z", "endTime": "2026-11-22T03:30:00Z"},
    ).json()
    # 01:30–02:00 at 110, 02:00–03:00 at 120, 03:00–03:30 at 130 → 120
    assert avg["carbonIntensity"] == pytest.approx(120.0)
    assert set(avg) == {"location", "startTime", "endTime", "carbonIntensity"}
    locs = c.get("/locations").json()
    assert locs["CAISO"] == {"Latitude": 37.34, "Longitude": -121.89, "Name": "CAISO"}
    assert "azure:eastus" in locs


def test_casdk_errors(client: TestClient) -> None:
    r = client.get("/emissions/bylocations?location=atlantis")
    assert r.status_code == 400
    assert r.json()["error_code"] == "UNKNOWN_REGION"
    assert client.get("/emissions/bylocations").status_code == 400
