"""Grid intensity providers against recorded response fixtures (tests/fixtures/grid/); no network."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from powermeter.data.grid import load_grid_data
from powermeter.data.locations import load_locations
from powermeter.routing.providers import (
    CachedProvider,
    CsvProvider,
    ElectricityMapsSource,
    GridstatusSource,
    IntensityPoint,
    ProviderConfig,
    ProviderUnavailable,
    StaticProvider,
    WattTimeSource,
    WithFallback,
    build_provider,
    frame_records_to_rows,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "grid"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LOCATIONS = load_locations()
GRID = load_grid_data()
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class Recorder:
    """Serves fixture files for (method, path) and records every request it saw."""

    def __init__(self, routes: dict[str, str | Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get(request.url.path)
        if route is None:
            return httpx.Response(404, json={"error": "no fixture"})
        if callable(route):
            return route(request)
        return httpx.Response(200, json=fixture(route))

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


# ---------------------------------------------------------------------------- static


def test_static_serves_the_dataset_figure_with_provenance() -> None:
    p = StaticProvider(LOCATIONS)
    pt = run(p.current("caiso", NOW))
    loc = LOCATIONS.resolve("CAISO")
    assert loc is not None
    assert pt.region == "CAISO"
    assert pt.intensity_g_per_kwh == loc.intensity_g_per_kwh
    assert (pt.signal, pt.provider, pt.is_estimated) == ("average", "static", True)
    assert pt.timestamp == datetime(loc.year, 1, 1, tzinfo=UTC)
    assert str(loc.year) in pt.detail
    assert LOCATIONS.version in pt.detail
    cloud = run(p.current("us-west1", NOW))  # bare GCP name resolves through the dataset
    assert cloud.region == "gcp:us-west1"


# ---------------------------------------------------------------------------- csv


def write_csv(path: Path, rows: list[tuple[str, datetime, float]], header: str = "region,timestamp,intensity") -> Path:
    lines = [header] + [f"{r},{t.isoformat().replace('+00:00', 'Z')},{v}" for r, t, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def day_rows(region: str, base: float, start: datetime = NOW.replace(hour=0)) -> list[tuple[str, datetime, float]]:
    return [(region, start + timedelta(hours=h), base + 10 * h) for h in range(24)]


def test_csv_replays_current_history_and_naive_forecast(tmp_path: Path) -> None:
    p = CsvProvider(write_csv(tmp_path / "g.csv", day_rows("CAISO", 100)), locations=LOCATIONS)
    pt = run(p.current("CAISO", NOW + timedelta(minutes=30)))
    assert pt.intensity_g_per_kwh == 100 + 10 * 12
    assert pt.timestamp == NOW
    assert pt.duration == timedelta(hours=1)
    assert (pt.provider, pt.is_estimated, pt.is_forecast) == ("csv", False, False)

    hist = run(p.history("CAISO", NOW - timedelta(hours=2), NOW))
    assert [h.intensity_g_per_kwh for h in hist] == [200, 210]

    # The day after the series: same hour yesterday, flagged as an estimate.
    fc = run(p.forecast("CAISO", NOW + timedelta(days=1), timedelta(hours=3)))
    assert [f.intensity_g_per_kwh for f in fc] == [220, 230, 240]
    assert all(f.is_estimated for f in fc)
    beyond = run(p.current("CAISO", NOW + timedelta(days=2, hours=1)))
    assert beyond.intensity_g_per_kwh == 230
    assert beyond.is_estimated


def test_csv_canonicalises_zone_names_and_serves_cloud_regions_from_their_grid(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "em.csv",
        day_rows("US-CAL-CISO", 50),
        header="Zone id,Datetime (UTC),Carbon intensity gCO₂eq/kWh (LCA)",
    )
    p = CsvProvider(path, locations=LOCATIONS)
    assert p.regions() == ["CAISO"]
    pt = run(p.current("aws:us-west-1", NOW))
    assert pt.region == "aws:us-west-1"
    assert pt.intensity_g_per_kwh == 50 + 120


def test_csv_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "g.csv", day_rows("PJM", 400))
    p = CsvProvider(path, locations=LOCATIONS, reload_check_s=0.0)
    assert run(p.current("PJM", NOW)).intensity_g_per_kwh == 520
    write_csv(path, day_rows("PJM", 10))
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))
    assert run(p.current("PJM", NOW)).intensity_g_per_kwh == 130


def test_csv_uncovered_region_falls_back_to_static_saying_so(tmp_path: Path) -> None:
    static = StaticProvider(LOCATIONS)
    p = WithFallback(CsvProvider(write_csv(tmp_path / "g.csv", day_rows("PJM", 400)), locations=LOCATIONS), static)
    pt = run(p.current("BPA", NOW))
    assert pt.provider == "static"
    assert pt.fallback_reason is not None
    assert "csv" in pt.fallback_reason


def test_csv_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="columns"):
        CsvProvider(bad, locations=LOCATIONS)
    bad.write_text("region,timestamp,intensity\nCAISO,2026-01-01T00:00:00Z,-5\n")
    with pytest.raises(ValueError, match="implausible"):
        CsvProvider(bad, locations=LOCATIONS)


# ---------------------------------------------------------------------------- WattTime


def watttime(rec: Recorder, **kw: Any) -> WattTimeSource:
    return WattTimeSource("user", "pass", transport=httpx.MockTransport(rec), locations=LOCATIONS, **kw)


def test_watttime_current_converts_lb_per_mwh_and_reuses_the_token() -> None:
    rec = Recorder({"/login": "watttime_login.json", "/v3/forecast": "watttime_forecast_now.json"})
    src = watttime(rec)

    async def go() -> list[IntensityPoint]:
        a = await src.fetch_current("CAISO", NOW)
        b = await src.fetch_current("aws:us-west-1", NOW)  # a cloud region asks for its grid
        await src.aclose()
        return [a, b]

    a, b = run(go())
    assert a.intensity_g_per_kwh == pytest.approx(850 * 0.45359237)
    assert (a.signal, a.provider) == ("marginal", "watttime")
    assert a.duration == timedelta(minutes=5)
    assert "CAISO_NORTH" in a.detail
    assert b.region == "aws:us-west-1"
    assert rec.paths().count("/login") == 1
    fc = next(r for r in rec.requests if r.url.path == "/v3/forecast")
    assert fc.url.params["region"] == "CAISO_NORTH"
    assert fc.url.params["horizon_hours"] == "0"
    assert fc.headers["authorization"].startswith("Bearer ")
    assert rec.requests[0].headers["authorization"].startswith("Basic ")


def test_watttime_relogs_in_on_401_and_resolves_unknown_region_ids() -> None:
    calls = {"n": 0}

    def forecast(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(401, json={"error": "expired"})
        return httpx.Response(200, json=fixture("watttime_forecast_now.json"))

    rec = Recorder(
        {
            "/login": "watttime_login.json",
            "/v3/forecast": forecast,
            "/v3/region-from-loc": "watttime_region_from_loc.json",
        }
    )
    src = watttime(rec, signal_type="co2_aoer")
    pt = run(src.fetch_current("ERCOT", NOW))
    assert pt.signal == "average"
    assert rec.paths().count("/login") == 2
    loc_req = next(r for r in rec.requests if r.url.path == "/v3/region-from-loc")
    site = GRID.site("ERCOT")
    assert site is not None
    assert float(loc_req.url.params["latitude"]) == site.latitude
    assert [r.url.params.get("region") for r in rec.requests if r.url.path == "/v3/forecast"] == [
        "ERCOT_NORTHCENTRAL"
    ] * 2


def test_watttime_history_and_forecast() -> None:
    rec = Recorder(
        {
            "/login": "watttime_login.json",
            "/v3/historical": "watttime_historical.json",
            "/v3/forecast": "watttime_forecast.json",
        }
    )
    src = watttime(rec)
    hist = run(src.fetch_history("CAISO", NOW - timedelta(hours=2), NOW))
    assert [round(h.intensity_g_per_kwh, 3) for h in hist] == [round(v * 0.45359237, 3) for v in (900, 880, 870)]
    fc = run(src.fetch_forecast("CAISO", NOW, timedelta(minutes=20)))
    assert len(fc) == 4
    assert all(f.is_forecast for f in fc)
    assert rec.requests[-1].url.params["horizon_hours"] == "1"


def test_watttime_http_errors_become_provider_errors() -> None:
    rec = Recorder({"/login": "watttime_login.json", "/v3/forecast": lambda r: httpx.Response(429, text="slow down")})
    with pytest.raises(ProviderUnavailable, match="429"):
        run(watttime(rec).fetch_current("CAISO", NOW))


# ---------------------------------------------------------------------------- Electricity Maps


def em(rec: Recorder) -> ElectricityMapsSource:
    return ElectricityMapsSource("tok", transport=httpx.MockTransport(rec), locations=LOCATIONS)


def test_electricitymaps_latest_history_forecast() -> None:
    rec = Recorder(
        {
            "/v3/carbon-intensity/latest": "electricitymaps_latest.json",
            "/v3/carbon-intensity/past-range": "electricitymaps_past_range.json",
            "/v3/carbon-intensity/forecast": "electricitymaps_forecast.json",
        }
    )
    src = em(rec)
    pt = run(src.fetch_current("CAISO", NOW))
    assert pt.intensity_g_per_kwh == 231
    assert (pt.signal, pt.provider, pt.is_estimated) == ("average", "electricitymaps", True)
    assert pt.timestamp == NOW
    assert rec.requests[0].headers["auth-token"] == "tok"
    assert rec.requests[0].url.params["zone"] == "US-CAL-CISO"
    assert rec.requests[0].url.params["emissionFactorType"] == "lifecycle"

    hist = run(src.fetch_history("CAISO", NOW - timedelta(hours=3), NOW))
    assert [h.intensity_g_per_kwh for h in hist] == [250, 240]  # the null reading is skipped
    fc = run(src.fetch_forecast("CAISO", NOW, timedelta(hours=3)))
    assert [f.intensity_g_per_kwh for f in fc] == [228, 190, 150]
    assert rec.requests[-1].url.params["horizonHours"] == "3"


def test_electricitymaps_cloud_region_without_grid_uses_data_center_lookup() -> None:
    rec = Recorder({"/v3/carbon-intensity/latest": "electricitymaps_latest.json"})
    run(em(rec).fetch_current("aws:eu-west-1", NOW))
    params = rec.requests[0].url.params
    assert (params["dataCenterProvider"], params["dataCenterRegion"]) == ("aws", "eu-west-1")


# ---------------------------------------------------------------------------- gridstatus


def recorded_mix(name: str) -> Callable[[str, Any], Coroutine[Any, Any, list[tuple[datetime, dict[str, float]]]]]:
    async def fetch(target: str, when: Any) -> list[tuple[datetime, dict[str, float]]]:
        fetch.calls.append((target, when))  # type: ignore[attr-defined]
        return frame_records_to_rows(fixture(name))

    fetch.calls = []  # type: ignore[attr-defined]
    return fetch


def test_gridstatus_caiso_fuel_mix_to_intensity_by_hand() -> None:
    fetch = recorded_mix("gridstatus_caiso_fuel_mix.json")
    src = GridstatusSource(fetch, locations=LOCATIONS)
    pt = run(src.fetch_current("CAISO", NOW))
    last = fixture("gridstatus_caiso_fuel_mix.json")[-1]
    f = GRID.factor_sets["lifecycle"].values()
    gen = {
        "solar": last["Solar"], "wind": last["Wind"], "geothermal": last["Geothermal"],
        "biomass": last["Biomass"] + last["Biogas"], "hydro": last["Small Hydro"] + last["Large Hydro"],
        "nuclear": last["Nuclear"], "gas": last["Natural Gas"],
    }  # fmt: skip
    expected = sum(mw * f[fuel] for fuel, mw in gen.items()) / sum(gen.values())
    assert pt.intensity_g_per_kwh == pytest.approx(expected)
    assert pt.timestamp == datetime(2026, 11, 22, 19, 55, tzinfo=UTC)
    assert pt.duration == timedelta(minutes=5)
    assert fetch.calls == [("CAISO", "latest")]  # type: ignore[attr-defined]
    assert "lifecycle" in pt.detail


def test_gridstatus_ercot_and_missing_keys() -> None:
    src = GridstatusSource(recorded_mix("gridstatus_ercot_fuel_mix.json"), factor_set="direct", locations=LOCATIONS)
    pt = run(src.fetch_current("gcp:us-south1", NOW))  # Dallas: ERCOT
    # Direct factors: coal 760, gas 370, "Other" 575 (unknown), renewables and nuclear 0; storage left out.
    generation_mw = 6500 + 50 + 4900 + 14000 + 9000 + 15000 + 20
    assert pt.intensity_g_per_kwh == pytest.approx((6500 * 760 + 15000 * 370 + 20 * 575) / generation_mw)
    # Without keys and without an injected fetcher, PJM and BPA are not covered.
    plain = GridstatusSource(locations=LOCATIONS)
    assert "PJM" not in plain.regions()
    assert "BPA" not in plain.regions()
    assert "CAISO" in plain.regions()


def test_gridstatus_forecast_is_seasonal_naive() -> None:
    async def fetch(target: str, when: Any) -> list[tuple[datetime, dict[str, float]]]:
        start = NOW - timedelta(days=1)
        return [(start + timedelta(hours=h), {"Solar": 100.0 * (h % 3), "Natural Gas": 100.0}) for h in range(24)]

    src = GridstatusSource(fetch, locations=LOCATIONS)
    fc = run(src.fetch_forecast("CAISO", NOW, timedelta(hours=3)))
    assert len(fc) == 3
    assert all(p.is_forecast and p.is_estimated for p in fc)
    assert fc[0].timestamp == NOW
    # Same hour yesterday: h=0 → no solar → the gas factor alone.
    assert fc[0].intensity_g_per_kwh == pytest.approx(490)


# ---------------------------------------------------------------------------- cache, SWR, backoff


class FakeSource:
    name = "fake"
    signal = "marginal"

    def __init__(self) -> None:
        self.value = 100.0
        self.fail = False
        self.calls = 0
        self.gate: asyncio.Event | None = None

    def regions(self) -> list[str]:
        return ["CAISO"]

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ProviderUnavailable("upstream down")
        return IntensityPoint(region, now, timedelta(minutes=5), self.value, "marginal", self.name, "fake")

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        return [await self.fetch_current(region, start)]

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        return [await self.fetch_current(region, now)]

    async def aclose(self) -> None:
        return None


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def cached(src: FakeSource, tick: Tick, **kw: Any) -> CachedProvider:
    return CachedProvider(src, StaticProvider(LOCATIONS), ttl_s=60, max_stale_s=600, monotonic=tick, **kw)  # type: ignore[arg-type]


def test_cache_serves_fresh_then_stale_while_revalidating() -> None:
    src, tick = FakeSource(), Tick()
    p = cached(src, tick)

    async def go() -> None:
        assert (await p.current("CAISO", NOW)).intensity_g_per_kwh == 100
        assert (await p.current("CAISO", NOW)).intensity_g_per_kwh == 100
        assert src.calls == 1  # fresh: no second fetch
        src.value = 50
        tick.t += 120  # stale
        assert (await p.current("CAISO", NOW)).intensity_g_per_kwh == 100  # served stale at once
        await asyncio.sleep(0)  # let the background refresh run
        await asyncio.sleep(0)
        assert src.calls == 2
        assert (await p.current("CAISO", NOW)).intensity_g_per_kwh == 50

    run(go())


def test_cache_falls_back_to_static_and_backs_off() -> None:
    src, tick = FakeSource(), Tick()
    src.fail = True
    p = cached(src, tick, backoff_base_s=10)

    async def go() -> None:
        pt = await p.current("CAISO", NOW)
        assert pt.provider == "static"
        assert pt.fallback_reason is not None
        assert "upstream down" in pt.fallback_reason
        assert src.calls == 1
        pt = await p.current("CAISO", NOW)  # inside the backoff window: not asked again
        assert src.calls == 1
        assert pt.fallback_reason is not None
        assert "backing off" in pt.fallback_reason
        tick.t += 11
        await p.current("CAISO", NOW)
        assert src.calls == 2  # retried after 10 s, failed again → next wait is 20 s
        tick.t += 11
        await p.current("CAISO", NOW)
        assert src.calls == 2
        src.fail = False
        tick.t += 10
        assert (await p.current("CAISO", NOW)).provider == "fake"

    run(go())


def test_concurrent_requests_coalesce_into_one_fetch() -> None:
    src, tick = FakeSource(), Tick()
    p = cached(src, tick)

    async def go() -> None:
        src.gate = asyncio.Event()
        waiters = [asyncio.create_task(p.current("CAISO", NOW)) for _ in range(20)]
        await asyncio.sleep(0.01)
        src.gate.set()
        points = await asyncio.gather(*waiters)
        assert src.calls == 1
        assert {pt.intensity_g_per_kwh for pt in points} == {100}

    run(go())


def test_slow_first_fetch_answers_static_then_fills_the_cache() -> None:
    src, tick = FakeSource(), Tick()
    p = cached(src, tick, first_fetch_timeout_s=0.01)

    async def go() -> None:
        src.gate = asyncio.Event()
        pt = await p.current("CAISO", NOW)
        assert pt.provider == "static"
        assert pt.fallback_reason is not None
        assert "did not answer" in pt.fallback_reason
        src.gate.set()
        await asyncio.sleep(0.01)
        assert (await p.current("CAISO", NOW)).provider == "fake"
        assert src.calls == 1

    run(go())


def test_build_provider_from_config(tmp_path: Path) -> None:
    assert build_provider(ProviderConfig()).name == "static"
    csv_path = write_csv(tmp_path / "g.csv", day_rows("CAISO", 1))
    assert build_provider(ProviderConfig(kind="csv", csv_path=csv_path)).name == "csv"
    with pytest.raises(ValueError, match="needs"):
        build_provider(ProviderConfig(kind="watttime"))
    with pytest.raises(ValueError, match="unknown grid provider"):
        build_provider(ProviderConfig(kind="carrier-pigeon"))
    rec = Recorder({"/v3/carbon-intensity/latest": "electricitymaps_latest.json"})
    p = build_provider(
        ProviderConfig(kind="electricitymaps", electricitymaps_token="t"), transport=httpx.MockTransport(rec)
    )
    assert isinstance(p, CachedProvider)
    assert run(p.current("CAISO", NOW)).intensity_g_per_kwh == 231
