"""The Python SDK against the real app (every API family), and CarbonRouter against real upstreams."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from powermeter.client import (
    AuthenticationError,
    BadRequestError,
    CarbonRouter,
    PermissionDeniedError,
    PowermeterClient,
    TransportError,
)
from powermeter.data.locations import load_locations
from powermeter.infra.clock import FrozenClock
from powermeter.routing.providers import CsvProvider
from tests.conftest import MakeKey
from tests.integration.routing.conftest import DAY, Upstreams, free_port, key_for

LOC = load_locations()


def sdk(client: TestClient, key: str | None) -> PowermeterClient:
    return PowermeterClient(api_key=key, http_client=client)


# ---------------------------------------------------------------------- every family, seed examples


def test_compute_jobs_and_audit(client: TestClient, make_key: MakeKey) -> None:
    pm = sdk(client, make_key())
    r = pm.jobs.report("ml-training-001", 120, cpu_cores=8, memory_gb=32, gpu_cores=2, geo_iso="US")
    assert r["job_id"] == "ml-training-001"
    assert r["kwh"] > 0
    assert r["co2_grams"] > 0
    assert r["receipt_id"].startswith("rcpt_")
    b = pm.jobs.batch(
        [
            {"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 16, "geo_iso": "US"},
            {"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"},
        ]
    )
    assert b["total_jobs"] == 2
    assert [j["job_id"] for j in b["jobs"]] == ["job-001", "job-002"]
    page = pm.jobs.receipts(limit=2)
    assert page["total"] == 3
    assert page["has_more"] is True
    assert {x["job_id"] for x in pm.jobs.iter_receipts(page_size=2)} == {"ml-training-001", "job-001", "job-002"}
    assert pm.jobs.receipts(job_id="job-002")["receipts"][0]["job_id"] == "job-002"
    stats = pm.jobs.api_key_stats()
    assert stats["daily_api_calls"] >= 1
    assert "remaining_calls" in stats
    pm.jobs.receipt(r["receipt_id"])
    logs = pm.audit.logs(action_type="VIEW")
    assert "logs" in logs
    assert all(entry["action_type"] == "VIEW" for entry in logs["logs"])


def test_inference(client: TestClient, make_key: MakeKey) -> None:
    pm = sdk(client, make_key())
    out = pm.inference.record(
        "Google",
        788,
        312,
        model="gemini-3-pro",
        reasoning_tokens=0,
        cached_tokens=0,
        startTimeMs=1710000000000,
        firstTokenTimeMs=1710000010000,
        source="dom_estimated",
        is_estimated=True,
        estimation_method="dom_gpt_tokenizer_v1",
    )
    for f in ("energy_wh", "co2_grams", "water_ml", "tree_days", "audit", "message"):
        assert f in out
    hist = pm.inference.history(limit=10)
    assert hist["pagination"]["totalElements"] == 1
    assert [x["model"] for x in pm.inference.iter_history()] == [hist["data"][0]["model"]]


def test_routing_and_grid(client: TestClient, make_key: MakeKey) -> None:
    pm = sdk(client, make_key(plan="core"))
    r = pm.routing.route("us-west1", 128)
    assert r["chosen_region"] == "BPA"
    assert r["alternatives"][0]["region"] == "BPA"
    assert pm.routing.route("us-west1", 1, candidates=["CAISO", "PJM"], max_latency_ms=50)["chosen_region"] == "CAISO"
    regions = pm.routing.grid_regions(kind="grid")
    assert regions["total"] == 8
    assert pm.routing.grid_intensity("PJM")["current"]["provider"] == "static"
    rows = pm.routing.emissions_by_locations(["CAISO", "BPA"])
    assert [x["location"] for x in rows] == ["CAISO", "BPA"]
    assert pm.routing.best_emissions(["CAISO", "BPA"])[0]["location"] == "BPA"
    (fc,) = pm.routing.current_forecast(["CAISO"], window_size=60)
    assert fc["location"] == "CAISO"
    assert "CAISO" in pm.routing.locations()


def test_cost_and_devices(client: TestClient, make_key: MakeKey) -> None:
    pm = sdk(client, make_key())
    cost = pm.cost.cost({"watts": 100, "hours_per_day": 8}, rate_config={"flat_rate": 0.15})
    assert cost["mode"] == "flat"
    assert cost["kwh_per_day"] == pytest.approx(0.8)
    assert cost["daily_cost"] == pytest.approx(0.12)
    tou = pm.cost.cost(
        {"watts": 100, "hours_per_day": 8, "schedule": [[22, 30]]},
        rate_config={
            "flat_rate": 0.15,
            "currency": "USD",
            "tou_tiers": [
                {"name": "off-peak", "start_hour": 0, "end_hour": 9, "rate": 0.12},
                {"name": "peak", "start_hour": 9, "end_hour": 24, "rate": 0.30},
            ],
        },
    )
    assert tou["mode"] == "tou"
    shift = pm.cost.shift_savings({"watts": 1500, "hours_per_day": 3, "shiftable": True}, region_code="US-CA")
    assert "currency" in shift or shift.get("message") == "no_tou_data"
    ev = pm.cost.battery_cost(
        mode="ev", battery_kwh=75, miles_per_month=1000, efficiency_mi_per_kwh=4, rate_per_kwh=0.15
    )
    assert ev
    arb = pm.cost.arbitrage(13500, 0.12, 0.40)
    assert arb
    assert pm.cost.rates("US-CA")
    assert pm.cost.rates_index()
    with pytest.raises(BadRequestError) as err:
        pm.cost.cost({"watts": 100, "hours_per_day": 30}, rate_config={"flat_rate": 0.15})
    assert err.value.status == 400

    dev = pm.devices.create("NAS", 30, 24, schedule=[[0, 24]], shiftable=False)
    assert [d["name"] for d in pm.devices.list()] == ["NAS"]
    assert pm.devices.get(dev["id"])["watts"] == 30
    assert pm.devices.update(dev["id"], watts=35)["watts"] == 35
    assert isinstance(pm.devices.profile(), dict)
    pm.devices.delete(dev["id"])
    assert pm.devices.list() == []


def test_errors_are_typed(client: TestClient, make_key: MakeKey) -> None:
    with pytest.raises(AuthenticationError) as e:
        sdk(client, "pm_live_nope").routing.route("CAISO", 1)
    assert e.value.status == 401
    with pytest.raises(PermissionDeniedError) as e2:
        sdk(client, make_key(plan="dev")).routing.route("CAISO", 1, candidates=["PJM"])
    assert e2.value.code == "REGION_NOT_IN_PLAN"
    assert "dev plan" in e2.value.detail
    with pytest.raises(AuthenticationError) as e3:
        sdk(client, None).devices.list()
    assert e3.value.code == "invalid_api_key"
    dead = PowermeterClient(f"http://127.0.0.1:{free_port()}", api_key="k", timeout=2)
    with pytest.raises(TransportError):
        dead.routing.route("CAISO", 1)
    dead.close()


# ---------------------------------------------------------------------- CarbonRouter


def test_carbon_router_offline_picks_cleanest_and_respects_latency() -> None:
    urls = {"CAISO": "http://caiso.test", "BPA": "http://bpa.test/api", "PJM": "http://pjm.test"}
    router = CarbonRouter(urls)
    assert router.best_url() == "http://bpa.test/api"  # annual: BPA < CAISO < PJM
    assert [c.region for c in router.ranked()] == ["BPA", "CAISO", "PJM"]
    assert router.best().intensity_g_per_kwh == LOC.resolve("BPA").intensity_g_per_kwh  # type: ignore[union-attr]
    east = CarbonRouter(urls, source_region="aws:us-east-1", max_latency_ms=40)
    assert east.best().region == "PJM"
    with pytest.raises(ValueError, match="http"):
        CarbonRouter({"CAISO": "ftp://x"})


def test_carbon_router_follows_changing_data_with_hysteresis(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"

    def write(caiso: float, bpa: float) -> None:
        rows = ["region,timestamp,intensity"]
        for h in range(24):
            t = (DAY + timedelta(hours=h)).isoformat()
            rows += [f"CAISO,{t},{caiso}", f"BPA,{t},{bpa}"]
        path.write_text("\n".join(rows) + "\n")

    write(100, 200)
    tick = {"t": 0.0}
    router = CarbonRouter(
        {"CAISO": "http://caiso.test", "BPA": "http://bpa.test"},
        provider=CsvProvider(path, reload_check_s=0.0),
        refresh_s=10,
        monotonic=lambda: tick["t"],
        now=lambda: DAY + timedelta(hours=5),
    )
    assert router.best().region == "CAISO"
    write(100, 95)  # 5 % better: not enough to move
    import os

    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
    tick["t"] += 11
    assert router.best().region == "CAISO"
    write(100, 50)
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 2_000_000))
    tick["t"] += 5
    assert router.best().region == "CAISO"  # cached until refresh_s passes
    tick["t"] += 6
    assert router.best().region == "BPA"
    assert router.decisions == 3


def test_carbon_router_asks_the_server_and_falls_back_offline(
    client: TestClient, make_key: MakeKey, clock: FrozenClock
) -> None:
    pm = sdk(client, make_key(plan="core"))
    router = CarbonRouter(
        {"us-west-2": "http://oregon.test", "CAISO": "http://caiso.test", "PJM": "http://pjm.test"},
        client=pm,
        source_region="us-west1",
    )
    assert router.best().region == "us-west-2"  # the server answered aws:us-west-2; mapped back to the name
    assert router.last_error is None
    assert router.best().provider == "static"
    dead = PowermeterClient(f"http://127.0.0.1:{free_port()}", api_key="k", timeout=1)
    offline = CarbonRouter({"CAISO": "http://caiso.test", "BPA": "http://bpa.test"}, client=dead)
    assert offline.best().region == "BPA"
    assert offline.last_error is not None
    assert "TransportError" in offline.last_error
    dead.close()


def test_carbon_transport_sends_to_cleanest_and_fails_over(upstreams: Upstreams) -> None:
    router = CarbonRouter({name: upstreams.url(name) for name in ("CAISO", "PJM", "BPA")})
    with httpx.Client(transport=router.transport(), base_url="http://carbon", timeout=10) as http:
        r = http.get("/hello?x=1")
        assert r.json()["upstream"] == "BPA"
        assert r.json()["path"] == "/hello"
        assert r.headers["x-carbon-region"] == "BPA"
        echo = http.post("/echo", content=b"x" * 1000)
        assert echo.json()["bytes"] == 1000
        upstreams.kill("BPA")
        # The GET fails over to the next cleanest; the dead upstream is then avoided.
        r = http.get("/after")
        assert r.json()["upstream"] == "CAISO"
        assert http.post("/echo", content=b"y").json()["upstream"] == "CAISO"
    # A non-idempotent request is not replayed: with every upstream but one dead it errors.
    only = CarbonRouter({"BPA": upstreams.url("BPA")})
    with (
        httpx.Client(transport=only.transport(), base_url="http://carbon", timeout=5) as http,
        pytest.raises(httpx.ConnectError),
    ):
        http.post("/echo", content=b"z")


def test_async_carbon_transport(upstreams: Upstreams) -> None:
    router = CarbonRouter({name: upstreams.url(name) for name in ("CAISO", "PJM")})

    async def go() -> list[Any]:
        async with httpx.AsyncClient(transport=router.async_transport(), base_url="http://carbon") as http:
            rs = await asyncio.gather(*(http.get(f"/n{i}") for i in range(5)))
            return [r.json()["upstream"] for r in rs]

    assert asyncio.run(go()) == ["CAISO"] * 5


def test_dev_plan_key_with_csv_data(csv_client: Any, clock: FrozenClock) -> None:
    c = csv_client({"CAISO": lambda h: 90.0})
    pm = sdk(c, key_for(c, clock, plan="dev"))
    clock.set(DAY + timedelta(hours=3))
    r = pm.routing.route("CAISO", 128)
    assert (r["chosen_region"], r["provider"], r["co2_g_per_kwh"]) == ("CAISO", "csv", 90.0)
