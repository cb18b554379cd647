"""Tariff engine: seed examples, hand-computed TOU costs, DST days, shift search, validation, properties."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from decimal import Decimal as D
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology.tariff import (
    DeviceUsage,
    TariffInputError,
    arbitrage,
    cheapest_start,
    compile_rate,
    device_cost,
    ev_charging_cost,
    parse_device,
    parse_rate_config,
    parse_schedule,
    period_cost,
    round_money,
    scheduled_load,
    shift_savings,
    time_cost,
    typical_day_cost,
)

LA = ZoneInfo("America/Los_Angeles")
LONDON = ZoneInfo("Europe/London")

SEED_TOU = {
    "flat_rate": 0.15,
    "currency": "USD",
    "tou_tiers": [
        {"name": "off-peak", "start_hour": 0, "end_hour": 9, "rate": 0.12},
        {"name": "peak", "start_hour": 9, "end_hour": 24, "rate": 0.30},
    ],
}


def rate(cfg: dict[str, Any]) -> Any:
    return compile_rate(parse_rate_config(cfg))


def cost(cfg: dict[str, Any], device: dict[str, Any], **kw: Any) -> Any:
    return device_cost(rate(cfg), parse_device(device), **kw)


def r4(x: D) -> D:
    return round_money(x)


# ---------------------------------------------------------------------------------------------
# the seed's examples


def test_seed_flat_example_returns_the_documented_numbers() -> None:
    c = cost({"flat_rate": 0.15}, {"watts": 100, "hours_per_day": 8})
    assert c.mode == "flat"
    assert c.kwh_per_day == D("0.8")
    assert (r4(c.energy.daily), r4(c.energy.monthly), r4(c.energy.annual)) == (
        D("0.12"),
        D("3.65"),
        D("43.8"),
    )
    assert c.currency == "USD"
    assert c.tou_note is None


def test_month_is_a_twelfth_of_a_365_day_year() -> None:
    c = cost({"flat_rate": "0.2"}, {"watts": 1000, "hours_per_day": 1})
    assert c.energy.annual == c.energy.daily * 365
    assert c.energy.monthly == c.energy.annual / 12


def test_seed_tou_example_overnight_schedule_is_priced_per_tier() -> None:
    # 100 W from 22:00 to 06:00: 22–24 at peak 0.30, 00–06 at off-peak 0.12
    c = cost(SEED_TOU, {"watts": 100, "hours_per_day": 8, "schedule": [[22, 30]]}, with_tiers=True)
    assert c.mode == "tou"
    assert c.kwh_per_day == D("0.8")
    assert c.energy.daily == D("0.1") * 2 * D("0.30") + D("0.1") * 6 * D("0.12")  # 0.132
    assert r4(c.energy.annual) == D("48.18")
    assert r4(c.energy.monthly) == D("4.015")
    tiers = {t.name: (t.kwh, t.cost) for t in c.tiers}
    assert tiers == {"off-peak": (D("0.6"), D("0.072")), "peak": (D("0.2"), D("0.06"))}


def test_tou_data_without_schedule_falls_back_to_flat_with_a_note() -> None:
    c = cost(SEED_TOU, {"watts": 100, "hours_per_day": 8})
    assert c.mode == "flat"
    assert r4(c.energy.daily) == D("0.12")
    assert c.tou_note is not None
    assert "no schedule" in c.tou_note


def test_annual_kwh_mode_uses_uses_per_week() -> None:
    c = cost(SEED_TOU, {"kwh_per_use": 1.0, "uses_per_week": 5})
    assert c.mode == "annual_kwh"
    # 1 kWh × 5/week × 365/7 = 260.714… kWh/yr at the flat 0.15
    assert r4(c.kwh_per_day * 365) == D("260.7143")
    assert r4(c.energy.annual) == D("39.1071")
    assert c.tou_note is not None
    assert "annual_kwh" in c.tou_note


def test_power_states_add_up_their_energy() -> None:
    states = [
        {"name": "active", "watts": 100, "hours_per_day": 4},
        {"name": "idle", "watts": 20, "hours_per_day": 10},
        {"name": "standby", "watts": 2, "hours_per_day": 10},
    ]
    c = cost({"flat_rate": 0.2}, {"power_states": states})
    assert c.mode == "power_states"
    assert c.kwh_per_day == D("0.62")
    assert c.energy.daily == D("0.124")


def test_power_states_with_schedules_use_tou() -> None:
    states = [
        {"watts": 1000, "hours_per_day": 2, "schedule": [[0, 2]]},
        {"watts": 500, "hours_per_day": 2, "schedule": [[10, 12]]},
    ]
    c = cost(SEED_TOU, {"power_states": states})
    assert c.mode == "power_states"
    assert c.energy.daily == 2 * D("0.12") + D("0.5") * 2 * D("0.30")


# ---------------------------------------------------------------------------------------------
# hand-computed TOU


def test_tier_wrapping_midnight_written_either_way() -> None:
    device = {"watts": 2000, "hours_per_day": 6, "schedule": [[20, 26]]}  # 20:00–02:00
    expected = 2 * D("2") * D("0.25") + 4 * D("2") * D("0.10")  # 1.0 + 0.8
    for night in ({"start_hour": 22, "end_hour": 6}, {"start_hour": 22, "end_hour": 30}):
        cfg = {
            "tou_tiers": [
                {"name": "night", **night, "rate": "0.10"},
                {"name": "day", "start_hour": 6, "end_hour": 22, "rate": "0.25"},
            ]
        }
        assert cost(cfg, device).energy.daily == expected


def test_uncovered_hours_take_the_flat_rate() -> None:
    cfg = {"flat_rate": "0.20", "tou_tiers": [{"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50"}]}
    c = cost(cfg, {"watts": 1000, "schedule": [[15, 17]]})
    assert c.energy.daily == D("0.20") + D("0.50")


def test_weekday_weekend_split_is_averaged_five_sevenths() -> None:
    cfg = {
        "flat_rate": "0.20",
        "tou_tiers": [{"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50", "days": "weekday"}],
    }
    c = cost(cfg, {"watts": 1000, "schedule": [[17, 19]]})
    weekday, weekend = 2 * D("0.50"), 2 * D("0.20")
    assert r4(c.energy.daily) == r4(weekday * 5 / 7 + weekend * 2 / 7)  # 0.8286


def test_seasons_weight_months_by_their_days() -> None:
    cfg = {
        "flat_rate": "0.20",
        "seasons": {"summer": [6, 7, 8, 9], "winter": [1, 2, 3, 4, 5, 10, 11, 12]},
        "tou_tiers": [
            {"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50", "season": "summer"},
            {"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.30", "season": "winter"},
        ],
    }
    c = cost(cfg, {"watts": 1000, "schedule": [[16, 21]]})
    summer_days = 30 + 31 + 31 + 30
    expected = (summer_days * 5 * D("0.50") + (365 - summer_days) * 5 * D("0.30")) / 365
    assert abs(c.energy.daily - expected) < D("1e-20")
    assert r4(c.energy.annual) == D("669.5")


def test_fixed_daily_charge_only_when_asked() -> None:
    cfg = {"flat_rate": "0.2573", "currency": "GBP", "fixed_daily_charge": "0.5137"}
    plain = cost(cfg, {"watts": 100, "hours_per_day": 10})
    assert plain.total.daily == D("0.2573")
    billed = cost(cfg, {"watts": 100, "hours_per_day": 10}, include_fixed=True)
    assert billed.total.daily == D("0.2573") + D("0.5137")
    assert r4(billed.total.annual) == r4((D("0.2573") + D("0.5137")) * 365)


def test_monthly_fixed_charge_converts_at_twelve_over_365() -> None:
    spec = parse_rate_config({"flat_rate": 0.1, "fixed_monthly_charge": "12.5"})
    assert spec.fixed_daily_charge * 365 == pytest.approx(D("150"))  # 12.5 × 12


def test_monthly_block_tiers_telescope() -> None:
    # DEWA-style slabs: 0–2,000 kWh/month at 0.29, 2,000–4,000 at 0.34 …
    cfg = {
        "currency": "AED",
        "block_tiers": [
            {"up_to_kwh": 2000, "rate": "0.29"},
            {"up_to_kwh": 4000, "rate": "0.34"},
            {"up_to_kwh": None, "rate": "0.44"},
        ],
    }
    c = cost(cfg, {"watts": 4166.666, "hours_per_day": 24})
    month_kwh = D("4166.666") * 24 / 1000 * D(365) / 12
    expected_month = 2000 * D("0.29") + (month_kwh - 2000) * D("0.34")
    assert abs(c.energy.monthly - expected_month) < D("1e-18")


def test_daily_block_allowance_hydro_quebec_style() -> None:
    cfg = {
        "currency": "CAD",
        "block_basis": "day",
        "block_tiers": [{"up_to_kwh": 40, "rate": "0.06905"}, {"up_to_kwh": None, "rate": "0.10652"}],
    }
    c = cost(cfg, {"watts": 2500, "hours_per_day": 20})  # 50 kWh/day
    assert c.energy.daily == 40 * D("0.06905") + 10 * D("0.10652")


def test_block_adjustment_credits_baseline_kwh_on_top_of_tou() -> None:
    cfg = {
        "tou_tiers": [{"name": "all", "start_hour": 0, "end_hour": 24, "rate": "0.40"}],
        "block_basis": "day",
        "block_tiers": [{"up_to_kwh": 5, "adj": "-0.08"}, {"up_to_kwh": None, "adj": "0"}],
    }
    c = cost(cfg, {"watts": 1000, "schedule": [[0, 8]]})  # 8 kWh/day
    assert c.energy.daily == 8 * D("0.40") - 5 * D("0.08")


# ---------------------------------------------------------------------------------------------
# real dates and DST


def _period(
    cfg: dict[str, Any], sched: list[list[int]], start: date, end: date, tz: ZoneInfo, watts: int = 1000
) -> Any:
    load = scheduled_load(D(watts), parse_schedule(sched, "device.schedule"), None)
    return period_cost(rate(cfg), load, start, end, tz)


def test_spring_forward_night_runs_seven_hours() -> None:
    p = _period(SEED_TOU, [[22, 30]], date(2026, 3, 7), date(2026, 3, 8), LA)
    first, second = p.per_day
    assert first.hours == 7  # clocks jump 02:00 → 03:00 on 2026-03-08
    assert first.energy_cost == 2 * D("0.30") + 5 * D("0.12")
    assert second.hours == 8
    assert second.energy_cost == 2 * D("0.30") + 6 * D("0.12")


def test_fall_back_night_runs_nine_hours_and_the_repeated_hour_is_off_peak() -> None:
    p = _period(SEED_TOU, [[22, 30]], date(2026, 10, 31), date(2026, 10, 31), LA)
    (day,) = p.per_day
    assert day.hours == 9
    assert day.kwh == 9
    assert day.energy_cost == 2 * D("0.30") + 7 * D("0.12")


def test_whole_day_window_bills_23_and_25_hours() -> None:
    spring = _period(SEED_TOU, [[0, 24]], date(2026, 3, 8), date(2026, 3, 8), LA)
    fall = _period(SEED_TOU, [[0, 24]], date(2026, 11, 1), date(2026, 11, 1), LA)
    ordinary = _period(SEED_TOU, [[0, 24]], date(2026, 11, 2), date(2026, 11, 2), LA)
    assert (spring.kwh, fall.kwh, ordinary.kwh) == (23, 25, 24)
    assert spring.energy_cost == 8 * D("0.12") + 15 * D("0.30")
    assert fall.energy_cost == 10 * D("0.12") + 15 * D("0.30")


def test_octopus_go_window_loses_an_hour_when_british_clocks_go_forward() -> None:
    go = {
        "currency": "GBP",
        "tou_tiers": [
            {"name": "off-peak", "start_hour": 0.5, "end_hour": 5.5, "rate": "0.085"},
            {"name": "peak", "start_hour": 5.5, "end_hour": 24.5, "rate": "0.28"},
        ],
    }
    p = _period(go, [[0, 24]], date(2026, 3, 29), date(2026, 3, 29), LONDON)
    assert p.kwh == 23
    assert p.energy_cost == 4 * D("0.085") + 19 * D("0.28")


def test_price_edge_inside_the_repeated_hour_counts_both_passes() -> None:
    cfg = {
        "tou_tiers": [
            {"name": "a", "start_hour": 0, "end_hour": 1.5, "rate": "1"},
            {"name": "b", "start_hour": 1.5, "end_hour": 24, "rate": "2"},
        ]
    }
    p = _period(cfg, [[0, 24]], date(2026, 11, 1), date(2026, 11, 1), LA)
    # 00:00–01:30 (a), 01:30–02:00 PDT (b), 01:00–01:30 PST again (a), 01:30–24:00 (b)
    assert p.energy_cost == 2 * D("1") + 23 * D("2")


@pytest.mark.parametrize(
    "day", [date(2026, 3, 7), date(2026, 3, 8), date(2026, 10, 31), date(2026, 11, 1), date(2026, 6, 15)]
)
def test_overnight_window_equals_its_two_halves(day: date) -> None:
    whole = _period(SEED_TOU, [[22, 30]], day, day, LA)
    evening = _period(SEED_TOU, [[22, 24]], day, day, LA)

    morning = _period(SEED_TOU, [[0, 6]], day + timedelta(days=1), day + timedelta(days=1), LA)
    assert whole.kwh == evening.kwh + morning.kwh
    assert whole.energy_cost == evening.energy_cost + morning.energy_cost


def test_weekend_and_holiday_profiles_on_real_dates() -> None:
    cfg = {
        "flat_rate": "0.20",
        "holidays_as_weekend": True,
        "tou_tiers": [{"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50", "days": "weekday"}],
    }
    r = rate(cfg)
    load = scheduled_load(D(1000), parse_schedule([[16, 21]], "s"), None)
    # 2026-12-24 Thu (weekday), 12-25 Fri (holiday), 12-26 Sat
    p = period_cost(r, load, date(2026, 12, 24), date(2026, 12, 26), LA, holidays=frozenset({date(2026, 12, 25)}))
    assert [d.energy_cost for d in p.per_day] == [5 * D("0.50"), 5 * D("0.20"), 5 * D("0.20")]


def test_period_blocks_scale_with_days() -> None:
    cfg = {
        "currency": "CAD",
        "block_basis": "day",
        "block_tiers": [{"up_to_kwh": 40, "rate": "0.06905"}, {"up_to_kwh": None, "rate": "0.10652"}],
    }
    p = _period(cfg, [[0, 24]], date(2026, 1, 1), date(2026, 1, 10), ZoneInfo("America/Toronto"), watts=2500)
    assert p.kwh == 600
    assert p.energy_cost == 400 * D("0.06905") + 200 * D("0.10652")


# ---------------------------------------------------------------------------------------------
# shift savings


def test_shift_savings_sce_summer_weekday_example() -> None:
    # research note §9.3: moving a 2 kWh load from 17:00 to off-peak saves 2 × (0.60484 − 0.37846)
    cfg = {
        "tou_tiers": [
            {"name": "on-peak", "start_hour": 16, "end_hour": 21, "rate": "0.60484"},
            {"name": "off-peak", "start_hour": 21, "end_hour": 16, "rate": "0.37846"},
        ]
    }
    s = shift_savings(rate(cfg), parse_device({"watts": 2000, "schedule": [[17, 18]], "shiftable": True}))
    assert s is not None
    assert s.baseline == "schedule"
    assert s.daily_savings == D("0.45276")
    assert s.optimal_window == (D(0), D(1))  # earliest of the tied off-peak starts
    assert s.annual_savings == D("0.45276") * 365


def test_shift_savings_without_schedule_compares_against_an_average_start() -> None:
    s = shift_savings(rate(SEED_TOU), parse_device({"watts": 1500, "hours_per_day": 3, "shiftable": True}))
    assert s is not None
    mean = (9 * D("0.12") + 15 * D("0.30")) / 24
    assert s.current_cost == D("1.5") * 3 * mean
    assert s.optimal_cost == D("1.5") * 3 * D("0.12")
    assert s.optimal_window == (D(0), D(3))


def test_shift_savings_finds_a_window_that_wraps_midnight() -> None:
    cfg = {
        "tou_tiers": [
            {"name": "cheap", "start_hour": 22, "end_hour": 2, "rate": "0.05"},
            {"name": "dear", "start_hour": 2, "end_hour": 22, "rate": "0.40"},
        ]
    }
    s = shift_savings(rate(cfg), parse_device({"watts": 1000, "hours_per_day": 4, "shiftable": True}))
    assert s is not None
    assert s.optimal_window == (D(22), D(26))
    assert s.optimal_cost == 4 * D("0.05")


def test_no_tou_means_no_shift_result() -> None:
    assert (
        shift_savings(rate({"flat_rate": 0.2}), parse_device({"watts": 10, "hours_per_day": 1, "shiftable": True}))
        is None
    )


def test_shift_needs_shiftable_device() -> None:
    with pytest.raises(TariffInputError) as e:
        shift_savings(rate(SEED_TOU), parse_device({"watts": 10, "hours_per_day": 1}))
    assert e.value.field == "device.shiftable"


tier_sets = st.lists(st.integers(min_value=1, max_value=23), min_size=0, max_size=6, unique=True).flatmap(
    lambda cuts: st.tuples(
        st.just(sorted(cuts)),
        st.lists(st.integers(min_value=0, max_value=60), min_size=len(cuts) + 1, max_size=len(cuts) + 1),
    )
)


def _tiers(cuts: list[int], cents: list[int]) -> list[dict[str, Any]]:
    edges = [0, *cuts, 24]
    return [
        {"name": f"t{i}", "start_hour": a, "end_hour": b, "rate": str(D(c) / 100)}
        for i, ((a, b), c) in enumerate(zip(itertools.pairwise(edges), cents, strict=True))
    ]


@settings(max_examples=150, deadline=None)
@given(tier_sets, st.integers(min_value=1, max_value=24), st.booleans())
def test_shift_search_matches_brute_force_over_every_start_hour(
    tiers: tuple[list[int], list[int]], duration: int, weekend_split: bool
) -> None:
    cuts, cents = tiers
    cfg: dict[str, Any] = {"tou_tiers": _tiers(cuts, cents)}
    if weekend_split:
        for t in cfg["tou_tiers"]:
            t["days"] = "weekday"
        cfg["flat_rate"] = "0.17"
    r = rate(cfg)
    res = shift_savings(r, DeviceUsage(watts=D(1000), hours_per_day=D(duration), shiftable=True))
    assert res is not None
    brute = min(
        typical_day_cost(r, scheduled_load(D(1000), ((D(s), D(s + duration)),), None)).energy_cost for s in range(24)
    )
    # exact for single-profile rates; weekday/weekend weights (5/7, 2/7) carry 28-digit Decimal rounding
    assert abs(res.optimal_cost - brute) < D("1e-20")


@settings(max_examples=100, deadline=None)
@given(tier_sets, st.integers(min_value=1, max_value=95))
def test_shift_search_is_never_beaten_on_a_quarter_hour_grid(tiers: tuple[list[int], list[int]], quarters: int) -> None:
    cuts, cents = tiers
    r = rate({"tou_tiers": _tiers(cuts, cents)})
    duration = D(quarters) / 4
    _, best = cheapest_start(r.typical, duration)
    grid = min(r.typical.integral_wrapped(D(q) / 4, D(q) / 4 + duration) for q in range(96))
    assert best <= grid


# ---------------------------------------------------------------------------------------------
# validation: clear errors naming the field


@pytest.mark.parametrize(
    ("cfg", "field", "words"),
    [
        (
            {
                "tou_tiers": [
                    {"name": "a", "start_hour": 0, "end_hour": 12, "rate": 1},
                    {"name": "b", "start_hour": 10, "end_hour": 24, "rate": 2},
                ]
            },
            "rateConfig.tou_tiers[1]",
            "overlaps tier 'a' between 10:00 and 12:00",
        ),
        (
            {"tou_tiers": [{"name": "a", "start_hour": 0, "end_hour": 12, "rate": 1}]},
            "rateConfig.tou_tiers",
            "12:00–24:00 uncovered",
        ),
        (
            {"tou_tiers": [{"name": "a", "start_hour": 25, "end_hour": 26, "rate": 1}]},
            "rateConfig.tou_tiers[0].start_hour",
            "[0, 24)",
        ),
        (
            {"tou_tiers": [{"name": "a", "start_hour": 5, "end_hour": 5, "rate": 1}]},
            "rateConfig.tou_tiers[0].end_hour",
            "differ",
        ),
        (
            {"tou_tiers": [{"name": "a", "start_hour": 5, "end_hour": 30, "rate": 1}]},
            "rateConfig.tou_tiers[0].end_hour",
            "start_hour + 24",
        ),
        ({"tou_tiers": [{"name": "a", "start_hour": 0, "end_hour": 24}]}, "rateConfig.tou_tiers[0].rate", "required"),
        (
            {"tou_tiers": [{"start_hour": 0, "end_hour": 24, "rate": 1, "days": "monday"}]},
            "rateConfig.tou_tiers[0].days",
            "weekday",
        ),
        ({"flat_rate": "abc"}, "rateConfig.flat_rate", "number"),
        ({"currency": "US Dollars", "flat_rate": 1}, "rateConfig.currency", "ISO 4217"),
        ({}, "rateConfig", "flat_rate"),
        ({"flat_rate": 1, "tou_teirs": []}, "rateConfig.tou_teirs", "unknown field"),
        ({"block_tiers": [{"up_to_kwh": 10, "rate": 1}]}, "rateConfig.block_tiers", "open-ended"),
    ],
)
def test_rate_validation_names_the_field(cfg: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(TariffInputError) as e:
        rate(cfg)
    assert e.value.field == field
    assert words in e.value.message


def test_weekday_only_tiers_without_flat_report_the_uncovered_weekend() -> None:
    with pytest.raises(TariffInputError) as e:
        rate({"tou_tiers": [{"start_hour": 0, "end_hour": 24, "rate": 1, "days": "weekday"}]})
    assert "weekends in Jan" in e.value.message


@pytest.mark.parametrize(
    ("device", "field", "words"),
    [
        ({"watts": 10, "schedule": [[22, 20]]}, "device.schedule[0][1]", "greater than start_hour"),
        ({"watts": 10, "schedule": [[22, 47]]}, "device.schedule[0][1]", "start_hour + 24"),
        ({"watts": 10, "schedule": [[24, 25]]}, "device.schedule[0][0]", "[0, 24)"),
        ({"watts": 10, "schedule": [[22, 30], [5, 7]]}, "device.schedule", "overlap between 05:00 and 06:00"),
        ({"watts": 10, "schedule": [22, 30]}, "device.schedule[0]", "pair"),
        ({"watts": 10, "schedule": []}, "device.schedule", "non-empty"),
        ({"watts": -1, "hours_per_day": 1}, "device.watts", "≥ 0"),
        ({"watts": 10, "hours_per_day": 25}, "device.hours_per_day", "≤ 24"),
        (
            {"power_states": [{"watts": 1, "hours_per_day": 20}, {"watts": 1, "hours_per_day": 5}]},
            "device.power_states",
            "more than 24",
        ),
        ({"power_states": [{"watts": 1}]}, "device.power_states[0].hours_per_day", "required"),
    ],
)
def test_device_validation_names_the_field(device: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(TariffInputError) as e:
        parse_device(device)
    assert e.value.field == field
    assert words in e.value.message


def test_hours_beyond_the_schedule_are_rejected() -> None:
    with pytest.raises(TariffInputError) as e:
        cost(SEED_TOU, {"watts": 100, "hours_per_day": 9, "schedule": [[22, 30]]})
    assert e.value.field == "device.hours_per_day"


def test_device_without_usage_is_rejected() -> None:
    with pytest.raises(TariffInputError) as e:
        cost(SEED_TOU, {"shiftable": True})
    assert e.value.field == "device"


def test_hours_per_day_spreads_over_a_longer_schedule() -> None:
    # a fridge scheduled all day but running 8 h: energy is 8 h worth, spread over 24 h of prices
    c = cost(SEED_TOU, {"watts": 300, "hours_per_day": 8, "schedule": [[0, 24]]})
    assert abs(c.kwh_per_day - D("2.4")) < D("1e-24")
    assert abs(c.energy.daily - D("0.1") * (9 * D("0.12") + 15 * D("0.30"))) < D("1e-24")


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=200, deadline=None)
@given(
    tier_sets,
    st.integers(min_value=0, max_value=95),
    st.integers(min_value=1, max_value=96),
    st.integers(min_value=1, max_value=5000),
)
def test_splitting_a_day_into_tiers_preserves_kwh(
    tiers: tuple[list[int], list[int]], start_q: int, len_q: int, watts: int
) -> None:
    cuts, cents = tiers
    r = rate({"tou_tiers": _tiers(cuts, cents)})
    s = D(start_q) / 4
    load = scheduled_load(D(watts), ((s, s + D(len_q) / 4),), None)
    c = typical_day_cost(r, load, with_tiers=True)
    assert sum((t.kwh for t in c.tiers), D(0)) == c.kwh == D(watts) / 1000 * D(len_q) / 4
    assert sum((t.cost for t in c.tiers), D(0)) == c.energy_cost == time_cost(r, load)


@settings(max_examples=200, deadline=None)
@given(
    tier_sets,
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=1, max_value=24),
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=0, max_value=3000),
    st.booleans(),
)
def test_cost_is_monotone_in_watts(
    tiers: tuple[list[int], list[int]], start: int, length: int, w1: int, w2: int, blocks: bool
) -> None:
    cuts, cents = tiers
    cfg: dict[str, Any] = {"tou_tiers": _tiers(cuts, cents)}
    if blocks:
        cfg["block_basis"] = "day"
        cfg["block_tiers"] = [{"up_to_kwh": 5, "adj": "-0.05"}, {"up_to_kwh": None, "adj": "0.10"}]
        cfg["tou_tiers"] = [{**t, "rate": str(D(t["rate"]) + D("0.05"))} for t in cfg["tou_tiers"]]
    r = rate(cfg)
    lo, hi = sorted((w1, w2))
    sched = [[start, start + length]]
    c_lo = device_cost(r, parse_device({"watts": lo, "schedule": sched})).energy.daily
    c_hi = device_cost(r, parse_device({"watts": hi, "schedule": sched})).energy.daily
    assert c_lo <= c_hi


@settings(max_examples=60, deadline=None)
@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31)),
    st.sampled_from(
        ["America/Los_Angeles", "Europe/London", "Australia/Sydney", "Australia/Brisbane", "America/Toronto"]
    ),
)
def test_full_day_window_bills_exactly_the_elapsed_hours(day: date, tz_name: str) -> None:
    tz = ZoneInfo(tz_name)
    p = _period(SEED_TOU, [[0, 24]], day, day, tz)

    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    elapsed = D(end.timestamp() - start.timestamp()) / 3600
    assert p.kwh == elapsed


# ---------------------------------------------------------------------------------------------
# batteries


def test_seed_ev_example() -> None:
    ev = ev_charging_cost(D(75), D(1000), D(4), D("0.15"))  # default η 0.88
    assert ev.kwh_from_wall_per_day * 365 / 12 == pytest.approx(D(250) / D("0.88"))
    assert r4(ev.cost.monthly) == D("42.6136")
    assert ev.cost.annual == ev.cost.monthly * 12
    assert ev.charges_per_month == D(250) / 75


def test_ev_charging_efficiency_of_one_means_wall_side_figures() -> None:
    ev = ev_charging_cost(D(75), D(1000), D(4), D("0.15"), charging_efficiency=D(1))
    assert ev.cost.monthly == D("37.5")


def test_seed_arbitrage_example() -> None:
    a = arbitrage(D(13500), D("0.12"), D("0.40"))
    assert a.kwh_bought_per_cycle == 15
    assert a.savings_per_cycle == D("3.6")
    assert a.annual_savings == D("1314")
    assert r4(a.breakeven_discharge_rate) == D("0.1333")


def test_arbitrage_with_degradation_can_lose_money() -> None:
    a = arbitrage(D(10000), D("0.22558"), D("0.30"), degradation_cost_per_kwh=D("0.07"))
    # break-even 0.22558 / 0.9 + 0.07 ≈ 0.3206 > 0.30
    assert not a.profitable
    assert a.savings_per_cycle < 0


def test_arbitrage_rejects_bad_efficiency() -> None:
    with pytest.raises(TariffInputError) as e:
        arbitrage(D(1000), D("0.1"), D("0.3"), round_trip_efficiency=D("1.2"))
    assert e.value.field == "round_trip_efficiency"
