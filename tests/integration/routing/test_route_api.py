"""POST /route: the seed's contract, routing over a day of CSV data, latency bounds, hysteresis, plans, quotas."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.accounts import repository as account_repo
from powermeter.app import create_app
from powermeter.data.locations import load_locations
from powermeter.infra.clock import FrozenClock
from powermeter.routing.providers import CachedProvider, ElectricityMapsSource, StaticProvider
from powermeter.routing.service import RoutingService
from powermeter.settings import Settings
from tests.conftest import MakeKey
from tests.integration.routing.conftest import DAY, bearer, key_for

SEED_FIELDS = {"chosen_region", "co2_g_per_kwh", "total_emissions_g", "alternatives"}
EXTRA_FIELDS = {"provider", "signal_type", "data_timestamp", "co2_g_per_kwh_precise"}
LOC = load_locations()


def intensity(code: str) -> float:
    loc = LOC.resolve(code)
    assert loc is not None
    return loc.intensity_g_per_kwh


# ---------------------------------------------------------------------- the seed's contract


def test_seed_curl_example_returns_every_documented_field(client: TestClient, make_key: MakeKey) -> None:
    """The seed's request, base URL and key changed (dev plan: California ISO)."""
    key = make_key(plan="dev")
    r = client.post(
        "/route",
        headers={**bearer(key), "Content-Type": "application/json"},
        content=json.dumps({"source_region": "us-west1", "payload_size": 128}),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == SEED_FIELDS | EXTRA_FIELDS
    assert body["chosen_region"] == "CAISO"
    ci = round(intensity("CAISO"))
    assert body["co2_g_per_kwh"] == ci
    assert body["alternatives"] == [{"region": "CAISO", "co2_g_per_kwh": ci, "co2_g_per_kwh_precise": ci}]
    # 128 MB: 0.128 GB × (0.055 kWh/GB at CAISO + 0.059 kWh/GB at the mean of us-west1 and CAISO)
    src = round(intensity("gcp:us-west1"))
    assert body["total_emissions_g"] == pytest.approx(0.128 * (0.055 * ci + 0.059 * (ci + src) / 2), abs=1e-6)
    assert (body["provider"], body["signal_type"]) == ("static", "average")
    assert body["data_timestamp"] == "2023-01-01T00:00:00Z"
    assert "locations sha256:" in r.headers["x-grid-data-version"]


def test_core_plan_routes_among_the_beta_regions(client: TestClient, make_key: MakeKey) -> None:
    key = make_key(plan="core")
    body = client.post("/route", headers=bearer(key), json={"source_region": "us-west1", "payload_size": 128}).json()
    alts = body["alternatives"]
    assert alts[0]["region"] == body["chosen_region"] == "BPA"
    assert {a["region"] for a in alts} == {"CAISO", "BPA", "ERCOT", "PJM", "MISO", "NYISO", "ISONE", "SPP"}
    values = [a["co2_g_per_kwh"] for a in alts]
    assert values == sorted(values)
    # X-API-Key works too (the project accepts either header everywhere).
    r = client.post("/route", headers={"X-API-Key": key}, json={"source_region": "us-west1", "payload_size": 1})
    assert r.status_code == 200


def test_route_needs_a_key_with_the_routing_scope(client: TestClient, make_key: MakeKey) -> None:
    assert client.post("/route", json={"source_region": "CAISO", "payload_size": 1}).status_code == 401
    key = make_key(scopes=["report:write"])
    r = client.post("/route", headers=bearer(key), json={"source_region": "CAISO", "payload_size": 1})
    assert r.status_code == 403
    assert r.json()["error_code"] == "INSUFFICIENT_SCOPE"


def test_bad_requests_name_the_field(client: TestClient, make_key: MakeKey) -> None:
    h = bearer(make_key(plan="scale"))
    r = client.post("/route", headers=h, json={"source_region": "atlantis", "payload_size": 1})
    assert r.status_code == 400
    assert r.json()["error_code"] == "UNKNOWN_REGION"
    assert "source_region" in r.json()["detail"]
    r = client.post(
        "/route", headers=h, json={"source_region": "CAISO", "payload_size": 1, "candidates": ["CAISO", "mars"]}
    )
    assert r.status_code == 400
    assert "candidates[1]" in r.json()["detail"]
    r = client.post("/route", headers=h, json={"source_region": "CAISO", "payload_size": -1})
    assert r.status_code == 400
    assert "payload_size" in json.dumps(r.json())
    r = client.post("/route", headers=h, json={"source_region": "CAISO", "payload_size": 1, "carbon_weight": 2})
    assert r.status_code == 400


# ---------------------------------------------------------------------- acceptance: a day of data


def caiso_day(h: int) -> float:
    """Solar noon dip: dirty at night, clean 10:00–16:59."""
    return 60.0 if 10 <= h < 17 else 320.0


def test_route_picks_the_right_region_at_each_hour(csv_client: Any, clock: FrozenClock) -> None:
    series = {"CAISO": caiso_day, "BPA": lambda h: 150.0, "PJM": lambda h: 400.0 if h < 20 else 100.0}
    c = csv_client(series)
    h = bearer(key_for(c, clock))
    chosen = []
    for hour in range(24):
        clock.set(DAY + timedelta(hours=hour, minutes=30))
        r = c.post(
            "/route",
            headers=h,
            json={"source_region": "us-west1", "payload_size": 10, "candidates": ["CAISO", "BPA", "PJM"]},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        values = {region: f(hour) for region, f in series.items()}
        expected = min(values, key=lambda k: values[k])
        assert body["chosen_region"] == expected, f"hour {hour}"
        assert body["co2_g_per_kwh"] == values[expected]
        assert body["provider"] == "csv"
        assert body["data_timestamp"] == (DAY + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert [a["co2_g_per_kwh"] for a in body["alternatives"]] == sorted(values.values())
        chosen.append(body["chosen_region"])
    assert chosen == ["BPA"] * 10 + ["CAISO"] * 7 + ["BPA"] * 3 + ["PJM"] * 4


def test_latency_bound_excludes_far_regions(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": lambda h: 50.0, "BPA": lambda h: 60.0, "PJM": lambda h: 400.0})
    h = bearer(key_for(c, clock))
    clock.set(DAY + timedelta(hours=12))
    base = {"source_region": "aws:us-east-1", "payload_size": 1, "candidates": ["CAISO", "BPA", "PJM"]}
    # Without a bound the far, clean CAISO wins; within 40 ms of N. Virginia only PJM is left.
    assert c.post("/route", headers=h, json=base).json()["chosen_region"] == "CAISO"
    body = c.post("/route", headers=h, json=base | {"max_latency_ms": 40}).json()
    assert body["chosen_region"] == "PJM"
    assert body["alternatives"] == [{"region": "PJM", "co2_g_per_kwh": 400, "co2_g_per_kwh_precise": 400.0}]
    # From Oregon with 30 ms: CAISO (≈19 ms) and BPA qualify, PJM does not.
    body = c.post("/route", headers=h, json=base | {"source_region": "us-west1", "max_latency_ms": 30}).json()
    assert {a["region"] for a in body["alternatives"]} == {"CAISO", "BPA"}
    r = c.post("/route", headers=h, json=base | {"candidates": ["CAISO"], "max_latency_ms": 5})
    assert r.status_code == 422
    assert r.json()["error_code"] == "NO_ELIGIBLE_REGION"
    assert "CAISO" in r.json()["detail"]


def test_carbon_weight_trades_carbon_for_latency(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": lambda h: 200.0, "PJM": lambda h: 150.0})
    h = bearer(key_for(c, clock))
    clock.set(DAY + timedelta(hours=1))
    body = {"source_region": "aws:us-west-1", "payload_size": 1, "candidates": ["CAISO", "PJM"]}
    assert c.post("/route", headers=h, json=body).json()["chosen_region"] == "PJM"
    assert c.post("/route", headers=h, json=body | {"carbon_weight": 0.5}).json()["chosen_region"] == "CAISO"


def test_margin_prevents_flapping(csv_client: Any, clock: FrozenClock) -> None:
    # CAISO and BPA cross back and forth by 3 % every hour; at 20:00 BPA becomes 30 % cleaner.
    c = csv_client({"CAISO": lambda h: 100.0, "BPA": lambda h: (97.0 if h % 2 else 103.0) if h < 20 else 70.0})
    h = bearer(key_for(c, clock))
    body = {"source_region": "us-west1", "payload_size": 1, "candidates": ["CAISO", "BPA"]}
    chosen = []
    for hour in range(24):
        clock.set(DAY + timedelta(hours=hour, minutes=5))
        r = c.post("/route", headers=h, json=body)
        chosen.append(r.json()["chosen_region"])
        if hour % 2 and hour < 20:
            assert r.headers["x-carbon-kept-current"].startswith("best=BPA")
    assert chosen == ["CAISO"] * 20 + ["BPA"] * 4
    # The state is per account: another account starting at an odd hour picks BPA directly.
    clock.set(DAY + timedelta(hours=1))
    other = bearer(key_for(c, clock, plan="scale"))
    assert c.post("/route", headers=other, json=body).json()["chosen_region"] == "BPA"


def test_region_not_covered_by_the_csv_falls_back_to_static_for_all(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": lambda h: 10.0})
    h = bearer(key_for(c, clock))
    clock.set(DAY + timedelta(hours=3))
    r = c.post("/route", headers=h, json={"source_region": "CAISO", "payload_size": 1, "candidates": ["CAISO", "BPA"]})
    body = r.json()
    assert body["provider"] == "static"
    assert body["chosen_region"] == "BPA"  # annual figures: BPA 123 < CAISO 263
    assert "mixed data sources" in r.headers["x-carbon-fallback"]


# ---------------------------------------------------------------------- plans and quotas


def test_plans_limit_the_regions(client: TestClient, make_key: MakeKey) -> None:
    def route(plan: str, candidates: list[str]) -> httpx.Response:
        key = make_key(email=f"{plan}@example.com", plan=plan)
        return client.post(  # type: ignore[return-value]
            "/route", headers=bearer(key), json={"source_region": "CAISO", "payload_size": 1, "candidates": candidates}
        )

    r = route("dev", ["PJM"])
    assert r.status_code == 403
    assert r.json()["error_code"] == "REGION_NOT_IN_PLAN"
    assert "dev plan" in r.json()["detail"]
    assert route("dev", ["aws:us-west-1", "gcp:us-west2"]).status_code == 200  # cloud regions on the CAISO grid
    assert route("core", ["PJM", "aws:us-west-2"]).status_code == 200
    assert route("core", ["aws:eu-west-1"]).status_code == 403
    r = route("scale", ["aws:eu-west-1", "aws:eu-north-1", "FR"])
    assert r.status_code == 200
    assert r.json()["chosen_region"] in {"aws:eu-north-1", "FR"}


def test_monthly_route_quota(settings: Settings, clock: FrozenClock) -> None:
    s = settings.model_copy(update={"plans_json": json.dumps({"dev": {"route_monthly_calls": 3}})})
    clock.set(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    app = create_app(s, clock=clock)
    body = {"source_region": "CAISO", "payload_size": 1}
    with TestClient(app) as c:
        key = key_for(c, clock, plan="dev")
        h = bearer(key)
        assert [c.post("/route", headers=h, json=body).status_code for _ in range(2)] == [200, 200]
    # Shutdown wrote the pending counts (group commit): a new process continues from them.
    with app.state.pm.db.begin() as conn:
        acct = conn.exec_driver_sql("SELECT account_id FROM api_keys LIMIT 1").scalar_one()
        assert account_repo.get_usage(conn, acct, "route_calls", "2026-11") == 2
    app.state.pm.db.dispose()
    app = create_app(s, clock=clock)
    with TestClient(app) as c:
        assert c.post("/route", headers=h, json=body).status_code == 200
        # The background task writes the pending count within a few flush intervals.
        for _ in range(100):
            with app.state.pm.db.begin() as conn:
                if account_repo.get_usage(conn, acct, "route_calls", "2026-11") == 3:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the route call count was not flushed")
        r = c.post("/route", headers=h, json=body)
        assert r.status_code == 429
        assert r.json()["error_code"] == "MONTHLY_QUOTA_EXCEEDED"
        assert int(r.headers["retry-after"]) == 3600
        # Rejected calls are not counted; a new month starts afresh.
        clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
        assert c.post("/route", headers=h, json=body).status_code == 200
        app.state.services.routing.calls.flush(app.state.pm.db)
        with app.state.pm.db.begin() as conn:
            assert account_repo.get_usage(conn, acct, "route_calls", "2026-11") == 3
            assert account_repo.get_usage(conn, acct, "route_calls", "2026-12") == 1
    app.state.pm.db.dispose()


# ---------------------------------------------------------------------- live provider: cached, with fallback


def test_live_provider_answers_from_cache_and_says_when_it_fell_back(app: FastAPI, make_key: MakeKey) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            200,
            json={"zone": request.url.params["zone"], "carbonIntensity": 42, "datetime": "2026-11-22T12:00:00Z",
                  "isEstimated": False, "temporalGranularity": "hourly"},
        )  # fmt: skip

    source = ElectricityMapsSource("tok", transport=httpx.MockTransport(handler), locations=LOC)
    provider = CachedProvider(source, StaticProvider(LOC))
    app.state.services = dataclasses.replace(  # before start-up binds its loop
        app.state.services, routing=RoutingService(provider, locations=LOC)
    )
    h = bearer(make_key(plan="dev"))
    with TestClient(app) as client:
        # The grid regions are kept warm by the background task from start-up on.
        for _ in range(100):
            if provider.fetches >= 8 and not provider._inflight:
                break
            client.get("/healthz")
        r = client.post("/route", headers=h, json={"source_region": "CAISO", "payload_size": 1})
        assert r.json()["provider"] == "electricitymaps"
        # A region nobody asked for yet: static now (saying so), live once the background fetch lands.
        body = {"source_region": "aws:us-west-1", "payload_size": 1, "candidates": ["aws:us-west-1"]}
        _check_live(client, provider, h, body, calls)


def _check_live(
    client: TestClient, provider: CachedProvider, h: dict[str, str], body: dict[str, Any], calls: list[httpx.Request]
) -> None:
    first = client.post("/route", headers=h, json=body)
    assert first.json()["provider"] == "static"
    assert "no data fetched yet" in first.headers["x-carbon-fallback"]
    # /route never waited on the provider; the refresh it asked for runs on the app's loop.
    for _ in range(200):
        if ("current", "aws:us-west-1") in provider._cache:
            break
        client.get("/healthz")
    later = client.post("/route", headers=h, json=body)
    assert later.json()["provider"] == "electricitymaps"
    assert later.json()["co2_g_per_kwh"] == 42
    assert "x-carbon-fallback" not in later.headers
    assert calls
    assert calls[0].url.params["zone"] == "US-CAL-CISO"


def test_intensities_are_integers_and_the_reported_one_is_the_one_used(csv_client: Any, clock: FrozenClock) -> None:
    """Issue 15 item 2: seed 002 shows ``co2_g_per_kwh`` as integers (``92``), alternatives too; a client
    decoding into integer types must work, and total_emissions_g must use the number shown."""
    c = csv_client({"CAISO": lambda h: 92.4, "BPA": lambda h: 150.5, "PJM": lambda h: 399.49})
    h = bearer(key_for(c, clock))
    clock.set(DAY + timedelta(hours=12))
    r = c.post(
        "/route", headers=h, json={"source_region": "CAISO", "payload_size": 128, "candidates": ["CAISO", "BPA", "PJM"]}
    )
    assert r.status_code == 200, r.text
    assert b'"co2_g_per_kwh":92,' in r.content  # a JSON integer, not 92.0 / 92.4
    body = r.json()
    assert type(body["co2_g_per_kwh"]) is int
    assert [(a["region"], a["co2_g_per_kwh"]) for a in body["alternatives"]] == [
        ("CAISO", 92),
        ("BPA", 151),
        ("PJM", 399),
    ]
    assert all(type(a["co2_g_per_kwh"]) is int for a in body["alternatives"])
    assert body["co2_g_per_kwh_precise"] == 92.4
    # source = destination here, so every kWh is at the reported intensity
    energy_kwh = float(r.headers["x-energy-kwh"])
    assert body["total_emissions_g"] == pytest.approx(energy_kwh * body["co2_g_per_kwh"], rel=1e-5)
    assert body["total_emissions_g"] != pytest.approx(energy_kwh * 92.4, rel=1e-5)


def test_concurrent_routes_of_one_account_all_answer(client: TestClient, make_key: MakeKey) -> None:
    """Sixteen /route calls of one account at once (they share its sticky-choice row): on PostgreSQL a
    call waiting for that row lock must wait off the event loop, or the call holding it can never commit
    and the process hangs. Every call answers 200 within the bound."""
    from concurrent.futures import ThreadPoolExecutor, wait

    key = make_key(plan="scale")
    headers = {**bearer(key), "Content-Type": "application/json"}
    regions = ["CAISO", "PJM", "BPA"]
    bodies = [
        json.dumps({"source_region": "us-west1", "payload_size": 128, "candidates": regions[: 1 + i % 3]})
        for i in range(16)
    ]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(client.post, "/route", headers=headers, content=b) for b in bodies]
        done, pending = wait(futures, timeout=60)
        assert not pending, f"{len(pending)} of 16 concurrent /route calls did not answer within 60 s"
    assert sorted(f.result().status_code for f in done) == [200] * 16
