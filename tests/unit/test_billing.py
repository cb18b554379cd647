"""Interval billing, checked against hand-computed bills (every expected number is worked out in the comments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology.billing import BillingInputError, BillRate, Reading, bill_readings, infer_interval
from powermeter.methodology.tariff import compile_rate, parse_rate_config

LA = ZoneInfo("America/Los_Angeles")
# night 00–02 at 0.10, peak 16–21 at 0.50, everything else at the flat 0.30
TOU = {
    "flat_rate": "0.30",
    "tou_tiers": [
        {"name": "night", "start_hour": 0, "end_hour": 2, "rate": "0.10"},
        {"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50"},
    ],
}


def rate(cfg: dict[str, object], **kw: object) -> BillRate:
    return BillRate(compile_rate(parse_rate_config(cfg)), **kw)  # type: ignore[arg-type]


def hourly(start_utc: datetime, kwhs: list[object]) -> list[Reading]:
    return [Reading(start_utc + timedelta(hours=i), Decimal(str(k)), i) for i, k in enumerate(kwhs)]


def test_dst_end_25_hour_day_prices_each_reading_at_its_local_hour() -> None:
    # 2026-11-01 in Los Angeles: 00:00 PDT = 07:00Z; the next midnight (PST) is 08:00Z on 11-02 → 25 readings.
    # Reading i has i+1 kWh. Local hours: i=0 → 00, i=1 → 01 PDT, i=2 → 01 PST, i=k → k−1 for k ≥ 2.
    # night (00–02): i=0,1,2 → 1+2+3 = 6 kWh × 0.10 = 0.60
    # peak (16–21): hours 16..20 → i=17..21 → 18+19+20+21+22 = 100 kWh × 0.50 = 50.00
    # rest: 325 − 6 − 100 = 219 kWh × 0.30 = 65.70 → total 116.30
    readings = hourly(datetime(2026, 11, 1, 7, tzinfo=UTC), list(range(1, 26)))
    bill = bill_readings(rate(TOU), readings, LA)
    assert bill.interval_minutes == 60
    assert bill.interval_inferred
    assert bill.days == 1
    (month,) = bill.months
    assert month.month == "2026-11"
    assert month.kwh == 325
    assert month.by_period["night"].kwh == 6
    assert month.by_period["night"].cost == Decimal("0.60")
    assert month.by_period["peak"].kwh == 100
    assert month.by_period["peak"].cost == Decimal("50.00")
    assert month.by_period["flat"].kwh == 219
    assert month.by_period["flat"].cost == Decimal("65.70")
    assert bill.total == Decimal("116.30")
    dst = [w for w in bill.warnings if w.code == "dst"]
    assert dst
    assert dst[0].examples == ("2026-11-01 has 25 hours (DST ends)",)
    assert not [w for w in bill.warnings if w.code in ("gap", "overlap", "duplicate")]


def test_dst_start_23_hour_day_prices_each_reading_at_its_local_hour() -> None:
    # 2026-03-08: 00:00 PST = 08:00Z; next midnight (PDT) = 07:00Z on 03-09 → 23 readings, 02:00 never happens.
    # Reading i has i+1 kWh. Local hours: i=0 → 00, i=1 → 01, i=k → k+1 for k ≥ 2.
    # night: i=0,1 → 3 kWh × 0.10 = 0.30; peak 16..20 → i=15..19 → 16+…+20 = 90 kWh × 0.50 = 45.00
    # rest: 276 − 3 − 90 = 183 kWh × 0.30 = 54.90 → total 100.20
    readings = hourly(datetime(2026, 3, 8, 8, tzinfo=UTC), list(range(1, 24)))
    bill = bill_readings(rate(TOU), readings, LA)
    (month,) = bill.months
    assert month.by_period["night"].kwh == 3
    assert month.by_period["peak"].kwh == 90
    assert month.by_period["flat"].kwh == 183
    assert bill.total == Decimal("100.20")
    assert [w.examples for w in bill.warnings if w.code == "dst"] == [("2026-03-08 has 23 hours (DST starts)",)]


def test_month_boundary_is_split_in_local_time_not_utc() -> None:
    # 22:00 and 23:00 PST on Jan 31 are 06:00Z and 07:00Z on Feb 1 (UTC says February), then 00:00 and 01:00 PST Feb 1.
    # flat 0.20, fixed 1.00/day: Jan = (1+2) × 0.20 + 1 day × 1.00 = 1.60; Feb = (3+4) × 0.20 + 1.00 = 2.40
    readings = hourly(datetime(2026, 2, 1, 6, tzinfo=UTC), [1, 2, 3, 4])
    bill = bill_readings(rate({"flat_rate": "0.20", "fixed_daily_charge": "1.00"}), readings, LA)
    jan, feb = bill.months
    assert (jan.month, jan.kwh, jan.energy_cost, jan.fixed_cost, jan.total) == (
        "2026-01",
        3,
        Decimal("0.60"),
        Decimal("1.00"),
        Decimal("1.60"),
    )
    assert (feb.month, feb.kwh, feb.total) == ("2026-02", 7, Decimal("2.40"))
    assert bill.total == Decimal("4.00")


def test_block_tariff_resets_every_billing_month() -> None:
    # first 10 kWh of a month at 0.10, the rest at 0.20. Hourly readings for all of Jan and Feb 2026 (local),
    # zero except 15 kWh on Jan 10 and 8 kWh on Feb 10.
    # Jan: 10 × 0.10 + 5 × 0.20 = 2.00; Feb (block resets): 8 × 0.10 = 0.80 (not 8 × 0.20 = 1.60 if cumulative)
    cfg = {"block_tiers": [{"up_to_kwh": 10, "rate": "0.10"}, {"up_to_kwh": None, "rate": "0.20"}]}
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)  # 00:00 PST
    n = (31 + 28) * 24
    kwhs: list[object] = [0] * n
    kwhs[9 * 24 + 12] = 15
    kwhs[(31 + 9) * 24 + 12] = 8
    bill = bill_readings(rate(cfg), hourly(start, kwhs), LA)
    jan, feb = bill.months
    assert jan.days == 31
    assert feb.days == 28
    assert jan.energy_cost == Decimal("2.00")
    assert [(b.up_to_kwh, b.kwh) for b in jan.blocks] == [(10, 10), (None, 5)]
    assert feb.energy_cost == Decimal("0.80")
    assert [(b.kwh, b.cost) for b in feb.blocks] == [(8, Decimal("0.80")), (0, 0)]
    # by-period costs are the block-adjusted cost, so they add up to the month's energy cost
    assert sum(p.cost for p in jan.by_period.values()) == jan.energy_cost


def test_fixed_charges_per_day_and_per_month_over_a_partial_month() -> None:
    # readings 2026-04-10 00:00 → 2026-04-20 23:00 local: 11 billing days of April's 30.
    # fixed 0.50/day × 11 = 5.50; monthly 30.00 × 11/30 = 11.00; energy 264 × 1 kWh × 0.25 = 66.00
    start = datetime(2026, 4, 10, 7, tzinfo=UTC)  # 00:00 PDT
    readings = hourly(start, [1] * (11 * 24))
    br = rate({"flat_rate": "0.25", "fixed_daily_charge": "0.50"}, fixed_monthly_charge=Decimal("30.00"))
    bill = bill_readings(br, readings, LA)
    (apr,) = bill.months
    assert (apr.days, apr.days_in_month) == (11, 30)
    assert apr.fixed_cost == Decimal("16.50")
    assert apr.energy_cost == Decimal("66.00")
    assert bill.total == Decimal("82.50")
    assert [w.examples for w in bill.warnings if w.code == "partial_month"] == [("2026-04: 11 of 30 days",)]


def test_weekend_and_holiday_prices_come_from_the_local_date() -> None:
    # weekday peak 16–21 at 0.50, weekends all 0.30 (flat). 2026-07-03 (Fri) is the observed US holiday.
    cfg = {
        "flat_rate": "0.30",
        "holidays_as_weekend": True,
        "tou_tiers": [{"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.50", "days": "weekday"}],
    }
    # 17:00 PDT on Thu 07-02, Fri 07-03 (holiday) and Sat 07-04 = 00:00Z the next day
    readings = [Reading(datetime(2026, 7, d, 0, tzinfo=UTC), Decimal(1), d) for d in (3, 4, 5)]
    holidays = frozenset({datetime(2026, 7, 3).date()})
    bill = bill_readings(rate(cfg), readings, LA, interval_minutes=60, holidays=holidays)
    (jul,) = bill.months
    assert jul.by_period["peak"].kwh == 1  # only Thursday
    assert jul.energy_cost == Decimal("1.10")  # 0.50 + 0.30 + 0.30
    gap = [w for w in bill.warnings if w.code == "gap"]
    assert gap
    assert gap[0].count == 2


def test_a_reading_straddling_a_tariff_edge_is_split_by_time() -> None:
    # 30-minute edge: peak from 16:30. A 60-min reading 16:00–17:00 of 2 kWh: 1 kWh at 0.30 + 1 kWh at 0.50
    cfg = {"flat_rate": "0.30", "tou_tiers": [{"name": "peak", "start_hour": "16.5", "end_hour": 21, "rate": "0.50"}]}
    r = [Reading(datetime(2026, 6, 1, 23, tzinfo=UTC), Decimal(2), 0)]
    bill = bill_readings(rate(cfg), r, LA, interval_minutes=60)
    assert bill.total == Decimal("0.80")
    assert bill.months[0].by_period["peak"].kwh == 1


def test_export_is_credited_at_the_export_rate_or_refused_naming_the_field() -> None:
    readings = hourly(datetime(2026, 6, 1, 19, tzinfo=UTC), [2, -3])  # 12:00 and 13:00 PDT
    bill = bill_readings(rate({"flat_rate": "0.30"}, export_rate=Decimal("0.05")), readings, LA)
    (jun,) = bill.months
    # 2 × 0.30 − 3 × 0.05 = 0.45; net kWh −1
    assert (jun.kwh, jun.import_kwh, jun.export_kwh) == (-1, 2, 3)
    assert jun.energy_cost == Decimal("0.45")
    assert jun.export_credit == Decimal("0.15")
    assert jun.by_period["export"].kwh == -3
    with pytest.raises(BillingInputError) as exc:
        bill_readings(rate({"flat_rate": "0.30"}, export_field="rateConfig.export_rate"), readings, LA)
    assert exc.value.field == "rateConfig.export_rate"
    assert "readings[1] is negative" in exc.value.message


def test_duplicates_dropped_conflicts_refused_overlaps_warned() -> None:
    t0 = datetime(2026, 6, 1, 19, tzinfo=UTC)
    rs = [
        Reading(t0, Decimal(1), 0),
        Reading(t0 + timedelta(minutes=15), Decimal(1), 1),
        Reading(t0 + timedelta(minutes=15), Decimal(1), 2),
        Reading(t0 + timedelta(minutes=30), Decimal(1), 3),
    ]
    bill = bill_readings(rate({"flat_rate": "1"}), rs, LA)
    assert bill.interval_minutes == 15
    assert bill.readings == 3
    assert bill.total == 3
    assert [w.code for w in bill.warnings] == ["duplicate"]
    rs[2] = Reading(rs[2].start, Decimal(2), 2)
    with pytest.raises(BillingInputError) as exc:
        bill_readings(rate({"flat_rate": "1"}), rs, LA)
    assert exc.value.field == "readings[2]"
    assert "readings[1]" in exc.value.message
    rs[2] = Reading(t0 + timedelta(minutes=20), Decimal(1), 2)
    bill = bill_readings(rate({"flat_rate": "1"}), rs, LA, interval_minutes=15)
    assert [w.code for w in bill.warnings] == ["overlap"]


def test_interval_inference() -> None:
    t0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert infer_interval([t0 + 1800 * i for i in range(5)]) == 30
    with pytest.raises(BillingInputError, match="interval_minutes"):
        infer_interval([t0 + 420 * i for i in range(5)])
    with pytest.raises(BillingInputError, match="fewer than two"):
        infer_interval([t0])


# ---------------------------------------------------------------------------------------------
# properties against a per-reading oracle (zoneinfo conversion + the engine's price lookup, no caches)

SEASONAL = {
    "flat_rate": "0.31",
    "seasons": {"summer": [6, 7, 8, 9], "winter": [1, 2, 3, 4, 5, 10, 11, 12]},
    "holidays_as_weekend": True,
    "tou_tiers": [
        {"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.52", "season": "summer", "days": "weekday"},
        {"name": "peak", "start_hour": 16, "end_hour": 21, "rate": "0.41", "season": "winter", "days": "weekday"},
        {"name": "night", "start_hour": 23, "end_hour": 7, "rate": "0.22"},
    ],
}


@settings(max_examples=30, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 1)),
    kwhs=st.lists(st.integers(min_value=0, max_value=5000), min_size=2, max_size=400),
)
def test_hourly_bill_matches_a_per_reading_oracle_and_its_15_minute_split(start: datetime, kwhs: list[int]) -> None:
    br = rate(SEASONAL)
    t0 = start.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    hol = frozenset({datetime(2026, 7, 3).date(), datetime(2025, 12, 25).date(), datetime(2026, 12, 25).date()})
    hourly = [Reading(t0 + timedelta(hours=i), Decimal(k) / 1000, i) for i, k in enumerate(kwhs)]
    bill = bill_readings(br, hourly, LA, interval_minutes=60, holidays=hol)
    oracle = Decimal(0)
    for r in hourly:
        local = r.start.astimezone(LA)
        price = br.rate.profile_on(local.date(), hol).price_at(Decimal(local.hour))
        oracle += r.kwh * price
    assert bill.energy_cost == oracle
    assert bill.kwh == sum(r.kwh for r in hourly)
    for m in bill.months:
        assert sum(p.kwh for p in m.by_period.values()) == m.kwh
        assert sum(p.cost for p in m.by_period.values()) == m.energy_cost
    quarters = [
        Reading(r.start + timedelta(minutes=15 * q), r.kwh / 4, 4 * r.ref + q) for r in hourly for q in range(4)
    ]
    assert bill_readings(br, quarters, LA, holidays=hol).energy_cost == oracle
