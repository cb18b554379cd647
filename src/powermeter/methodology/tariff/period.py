"""Real dates: a load priced on every local date of a period on elapsed (UTC) time, DST included."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from powermeter.methodology.tariff.compile import CompiledRate
from powermeter.methodology.tariff.load import Load
from powermeter.methodology.tariff.local_time import hours_between, transitions, wall_hour, wall_to_utc
from powermeter.methodology.tariff.model import D0, MAX_PERIOD_DAYS, TariffInputError
from powermeter.methodology.tariff.typical_day import apply_blocks


@dataclass(frozen=True, slots=True)
class DayUse:
    day: date
    hours: Decimal  # elapsed hours the device ran (its windows starting this day)
    kwh: Decimal
    energy_cost: Decimal  # time-based, before blocks


@dataclass(frozen=True, slots=True)
class PeriodCost:
    start: date
    end: date
    days: int
    kwh: Decimal
    energy_cost: Decimal
    fixed_cost: Decimal
    per_day: tuple[DayUse, ...]

    @property
    def total_cost(self) -> Decimal:
        return self.energy_cost + self.fixed_cost


def _interval_cost(rate: CompiledRate, u0: datetime, u1: datetime, tz: ZoneInfo, holidays: frozenset[date]) -> Decimal:
    """∫ price dt (per kW) over the absolute interval [u0, u1), cut at every local price edge."""
    d0 = u0.astimezone(tz).date() - timedelta(days=1)
    d1 = u1.astimezone(tz).date() + timedelta(days=1)
    cuts: set[datetime] = {u0, u1}
    d = d0
    while d <= d1:
        for b in rate.profile_on(d, holidays).breaks[:-1]:
            for fold in (0, 1):
                u = wall_to_utc(d, b, tz, fold)
                if u0 < u < u1:
                    cuts.add(u)
        for u in transitions(d, tz):
            if u0 < u < u1:
                cuts.add(u)
        d += timedelta(days=1)
    ordered = sorted(cuts)
    total = D0
    for ua, ub in itertools.pairwise(ordered):
        mid = ua + (ub - ua) / 2
        wd, wh = wall_hour(mid, tz)
        total += hours_between(ua, ub) * rate.profile_on(wd, holidays).price_at(wh)
    return total


def period_cost(
    rate: CompiledRate,
    load: Load,
    start: date,
    end: date,
    tz: ZoneInfo,
    *,
    holidays: frozenset[date] = frozenset(),
    include_fixed: bool = False,
) -> PeriodCost:
    """Cost of ``load`` on every local date from ``start`` to ``end`` (inclusive), on real elapsed time.

    Each window is placed on its start date in local wall time, converted to UTC (non-existent times
    move forward, ambiguous times take their first occurrence), and priced piecewise between every
    local tariff edge, so 23- and 25-hour days bill the hours that really elapsed.
    """
    if end < start:
        raise TariffInputError("period.end", "must not be before period.start")
    n_days = (end - start).days + 1
    if n_days > MAX_PERIOD_DAYS:
        raise TariffInputError("period", f"at most {MAX_PERIOD_DAYS} days, got {n_days}")
    per_day: list[DayUse] = []
    total_kwh = D0
    total_cost = D0
    d = start
    while d <= end:
        hours = D0
        kwh = D0
        cost = D0
        for w in load.windows:
            u0 = wall_to_utc(d, w.start, tz)
            u1 = wall_to_utc(d, w.end, tz)
            if u1 <= u0:
                continue
            h = hours_between(u0, u1)
            hours += h
            kwh += w.power_kw * h
            if rate.has_tou:
                cost += w.power_kw * _interval_cost(rate, u0, u1, tz, holidays)
            else:
                cost += w.power_kw * h * rate.typical.prices[0]
        per_day.append(DayUse(d, hours, kwh, cost))
        total_kwh += kwh
        total_cost += cost
        d += timedelta(days=1)
    energy = apply_blocks(rate, total_kwh, total_cost, Decimal(n_days))
    fixed = rate.spec.fixed_daily_charge * n_days if include_fixed else D0
    return PeriodCost(start, end, n_days, total_kwh, energy, fixed, tuple(per_day))
