"""Grid intensity methodology and the grid reference data."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powermeter.data.grid import build_latency_rows, grid_file, load_grid_data, region_key
from powermeter.methodology.grid import (
    Series,
    intensity_from_fuel_mix,
    lb_per_mwh_to_g_per_kwh,
    rolling_window_means,
    seasonal_naive_forecast,
    seasonal_naive_value,
    time_weighted_mean,
)

GRID = load_grid_data()
LIFECYCLE = GRID.factor_sets["lifecycle"].values()
DIRECT = GRID.factor_sets["direct"].values()
ALIASES = GRID.fuel_aliases
T0 = datetime(2026, 6, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------- factor set


def test_factor_set_is_the_pinned_ipcc_and_electricity_maps_values() -> None:
    assert LIFECYCLE == {
        "coal": 820, "gas": 490, "oil": 650, "biomass": 230, "geothermal": 38, "hydro": 24,
        "nuclear": 12, "solar": 45, "wind": 11, "unknown": 700,
    }  # fmt: skip
    assert DIRECT["coal"] == 760
    assert DIRECT["gas"] == 370
    assert DIRECT["wind"] == 0
    for fs in GRID.factor_sets.values():
        for f in fs.factors.values():
            assert f.source
            assert f.unit == "g/kWh"
            assert f.dataset_version == GRID.version


def test_every_alias_points_at_a_known_fuel() -> None:
    allowed = set(LIFECYCLE) | {"storage", "excluded"}
    assert set(ALIASES.values()) <= allowed


# ---------------------------------------------------------------------------- fuel mix


def test_caiso_style_mix_by_hand() -> None:
    # 1000 MW solar, 500 MW gas, 300 MW imports (left out), batteries charging (-200 MW).
    mix = {"Solar": 1000.0, "Natural Gas": 500.0, "Imports": 300.0, "Batteries": -200.0}
    r = intensity_from_fuel_mix(mix, LIFECYCLE, ALIASES)
    assert r.intensity_g_per_kwh == pytest.approx((1000 * 45 + 500 * 490) / 1500)
    assert r.generation_mw == 1500
    assert r.unmapped == ()


def test_direct_factors_make_renewables_zero() -> None:
    r = intensity_from_fuel_mix({"Wind": 400.0, "Coal and Lignite": 100.0}, DIRECT, ALIASES)
    assert r.intensity_g_per_kwh == pytest.approx(100 * 760 / 500)


def test_storage_discharge_carries_the_rest_of_the_mix() -> None:
    base = {"Wind": 300.0, "Natural Gas": 100.0}
    without = intensity_from_fuel_mix(base, LIFECYCLE, ALIASES).intensity_g_per_kwh
    r = intensity_from_fuel_mix({**base, "Power Storage": 250.0}, LIFECYCLE, ALIASES)
    assert r.intensity_g_per_kwh == pytest.approx(without)
    assert r.storage_mw == 250.0


def test_unknown_columns_are_counted_conservatively_and_reported() -> None:
    r = intensity_from_fuel_mix({"Hydro": 100.0, "Mystery Fuel": 100.0}, LIFECYCLE, ALIASES)
    assert r.unmapped == ("Mystery Fuel",)
    assert r.intensity_g_per_kwh == pytest.approx((24 + 700) / 2)


def test_missing_readings_are_skipped_and_empty_mix_rejected() -> None:
    r = intensity_from_fuel_mix({"Nuclear": 100.0, "Coal": None, "Wind": math.nan}, LIFECYCLE, ALIASES)
    assert r.intensity_g_per_kwh == 12
    with pytest.raises(ValueError, match="no positive generation"):
        intensity_from_fuel_mix({"Imports": 100.0, "Batteries": -5.0}, LIFECYCLE, ALIASES)


fuel_names = st.sampled_from(["Solar", "Wind", "Coal", "Natural Gas", "Nuclear", "Large Hydro", "Oil", "Other"])


@given(st.dictionaries(fuel_names, st.floats(0.0, 1e5), min_size=1).filter(lambda d: sum(d.values()) > 1e-3))
def test_intensity_is_within_the_factor_range_and_contributions_add_up(mix: dict[str, float]) -> None:
    r = intensity_from_fuel_mix(mix, LIFECYCLE, ALIASES)
    assert min(LIFECYCLE.values()) - 1e-9 <= r.intensity_g_per_kwh <= max(LIFECYCLE.values()) + 1e-9
    assert sum(r.contributions_g_per_kwh.values()) == pytest.approx(r.intensity_g_per_kwh)


@given(st.floats(0, 3000))
def test_watttime_unit_conversion(lb: float) -> None:
    # 1 lb/MWh = 453.59237 g / 1000 kWh
    assert lb_per_mwh_to_g_per_kwh(lb) == pytest.approx(lb * 453.59237 / 1000)


# ---------------------------------------------------------------------------- series / forecast


def hourly(values: list[float], start: datetime = T0) -> Series:
    return Series.from_points([(start + timedelta(hours=i), v) for i, v in enumerate(values)])


def test_series_lookup_is_a_step_function() -> None:
    s = hourly([10, 20, 30])
    assert s.step_s == 3600
    assert s.value_at(T0.timestamp()) == 10
    assert s.value_at((T0 + timedelta(minutes=59)).timestamp()) == 10
    assert s.value_at((T0 + timedelta(hours=2, minutes=30)).timestamp()) == 30
    assert s.value_at((T0 + timedelta(hours=3)).timestamp()) is None
    assert s.value_at((T0 - timedelta(seconds=1)).timestamp()) is None


def test_gap_in_series_is_not_covered() -> None:
    s = Series.from_points([(T0, 1.0), (T0 + timedelta(hours=1), 2.0), (T0 + timedelta(hours=5), 3.0)])
    assert s.value_at((T0 + timedelta(hours=3)).timestamp()) is None
    assert seasonal_naive_value(s, (T0 + timedelta(hours=3)).timestamp()) == 2.0  # persistence


def test_seasonal_naive_repeats_the_last_day() -> None:
    day = [float(100 + h) for h in range(24)]
    s = hourly(day + day[:6])  # 30 hours
    fc = seasonal_naive_forecast(s, (T0 + timedelta(hours=30)).timestamp(), steps=24)
    assert [v for _, v in fc] == day[6:] + day[:6]
    # Two days later: still the same hour of the day.
    assert seasonal_naive_value(s, (T0 + timedelta(days=3, hours=7)).timestamp()) == 107


def test_naive_forecast_with_less_than_a_day_is_persistence() -> None:
    s = hourly([5.0, 6.0, 7.0])
    fc = seasonal_naive_forecast(s, (T0 + timedelta(hours=3)).timestamp(), steps=4)
    assert [v for _, v in fc] == [7.0] * 4


def test_time_weighted_mean_and_coverage() -> None:
    s = hourly([100, 200])
    pts = s.window(T0.timestamp(), (T0 + timedelta(hours=2)).timestamp())
    start = (T0 + timedelta(minutes=30)).timestamp()
    assert time_weighted_mean(pts, 3600, start, start + 3600) == pytest.approx(150)
    with pytest.raises(ValueError, match="cover"):
        time_weighted_mean(pts, 3600, start, start + 3 * 3600)


def test_rolling_window_picks_the_best_window_not_the_best_point() -> None:
    # A single low hour surrounded by high ones loses to two moderate hours (CASDK's rationale).
    values = [500, 50, 500, 200, 200, 500]
    pts = [((T0 + timedelta(hours=i)).timestamp(), float(v)) for i, v in enumerate(values)]
    means = rolling_window_means(pts, 3600, 2 * 3600)
    assert len(means) == 5
    best_t, best_v = min(means, key=lambda p: p[1])
    assert best_v == 200
    assert best_t == pts[3][0]
    assert rolling_window_means(pts, 3600, 0) == pts


# ---------------------------------------------------------------------------- latency table data


def test_shipped_latency_table_matches_the_sites_and_model() -> None:
    with grid_file("latency_ms.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(r for r in fh if not r.startswith("#")))
    modelled = {(r["region_a"], r["region_b"]): float(r["rtt_ms"]) for r in rows if r["method"] == "modelled"}
    expected = {(a, b): ms for a, b, ms in build_latency_rows(GRID.sites)}
    assert modelled == expected, "regenerate with `python -m powermeter.data.grid`"


def test_latency_table_is_symmetric_and_orders_distances() -> None:
    lt = GRID.latency
    assert lt.rtt_ms("CAISO", "PJM") == lt.rtt_ms("pjm", "caiso")
    assert lt.rtt_ms("CAISO", "BPA") < lt.rtt_ms("CAISO", "ERCOT") < lt.rtt_ms("CAISO", "PJM")  # type: ignore[operator]
    assert lt.rtt_ms("CAISO", "aws:us-west-1") == 1.0  # same site
    assert lt.rtt_ms("CAISO", "nowhere") is None
    assert lt.method(
        "CAISO",
        "PJM",
    ).startswith("modelled")  # type: ignore[union-attr]


def test_cloud_region_names_resolve_without_prefix() -> None:
    assert GRID.resolve_site_code("us-west1") == "gcp:us-west1"
    assert GRID.resolve_site_code("us-west-1") == "aws:us-west-1"
    assert GRID.resolve_site_code("westus2") == "azure:westus2"
    assert GRID.resolve_site_code("mars-1") is None
    assert region_key(" CAISO ") == region_key("caiso")


def test_provider_ids_cover_the_grid_regions() -> None:
    for code in ("CAISO", "ERCOT", "PJM", "BPA", "MISO", "NYISO", "ISONE", "SPP"):
        ids = GRID.ids(code)
        assert ids is not None
        assert ids.electricitymaps_zone
        assert ids.eia_ba
        assert GRID.site(code) is not None
