"""Typical-day pricing: a load under a compiled rate over a typical 365-day year (TOU, seasons, blocks)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from powermeter.methodology.tariff.compile import CompiledRate
from powermeter.methodology.tariff.load import Load
from powermeter.methodology.tariff.model import D0, D1, DAYS_PER_TYPICAL_MONTH, DAYS_PER_TYPICAL_YEAR, MONTHS_PER_YEAR


@dataclass(frozen=True, slots=True)
class TierUse:
    name: str
    kwh: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class DayCost:
    kwh: Decimal
    energy_cost: Decimal  # before fixed charges
    tiers: tuple[TierUse, ...] = ()


def time_cost(rate: CompiledRate, load: Load) -> Decimal:
    """Typical-year cost of one day of ``load`` at time-based prices (no blocks, no fixed charge)."""
    prof = rate.typical
    total = D0
    for w in load.windows:
        total += w.power_kw * prof.integral_wrapped(w.start, w.end)
    return total


def tier_breakdown(rate: CompiledRate, load: Load) -> tuple[TierUse, ...]:
    """kWh and cost per tier name on a typical day (weekday/weekend and seasons weighted)."""
    acc: dict[str, tuple[Decimal, Decimal]] = {}
    for prof, weight in rate.weighted:
        for w in load.windows:
            for a, b in w.pieces():
                for name, (hours, integral) in prof.by_name(a, b).items():
                    k0, c0 = acc.get(name, (D0, D0))
                    acc[name] = (k0 + weight * w.power_kw * hours, c0 + weight * w.power_kw * integral)
    return tuple(TierUse(n, k, c) for n, (k, c) in sorted(acc.items()))


def apply_blocks(rate: CompiledRate, kwh: Decimal, time_based_cost: Decimal, days: Decimal) -> Decimal:
    """Energy cost of ``kwh`` used over ``days`` days once block tiers are applied.

    Block limits are per month (prorated by ``days / (365/12)``) or per day (× ``days``). kWh in a
    block with a ``rate`` pay that rate; kWh in a block without one pay their load-weighted
    time-based price plus the block's ``adj``. Blocks apply to the kWh being priced (a single device
    on the calculator; the whole household on ``/api/v1/me/costs``).
    """
    blocks = rate.spec.block_tiers
    if not blocks or kwh <= 0:
        return time_based_cost
    scale = days if rate.spec.block_basis == "day" else days / DAYS_PER_TYPICAL_MONTH
    mean_price = time_based_cost / kwh
    cost = D0
    lower = D0
    for b in blocks:
        upper = None if b.up_to_kwh is None else b.up_to_kwh * scale
        in_block = kwh - lower if upper is None else max(D0, min(kwh, upper) - lower)
        if in_block > 0:
            price = b.rate if b.rate is not None else mean_price + b.adj
            cost += in_block * price
        if upper is None or kwh <= upper:
            break
        lower = upper
    return cost


def typical_day_cost(rate: CompiledRate, load: Load, *, with_tiers: bool = False) -> DayCost:
    """Energy and cost of one typical day of ``load`` under ``rate`` (TOU, seasons, blocks)."""
    kwh = load.kwh_per_day
    tc = time_cost(rate, load)
    month_kwh = kwh * DAYS_PER_TYPICAL_MONTH
    if rate.spec.block_tiers:
        if rate.spec.block_basis == "day":
            cost = apply_blocks(rate, kwh, tc, D1)
        else:
            cost = apply_blocks(rate, month_kwh, tc * DAYS_PER_TYPICAL_MONTH, DAYS_PER_TYPICAL_MONTH)
            cost = cost / DAYS_PER_TYPICAL_MONTH
    else:
        cost = tc
    return DayCost(kwh, cost, tier_breakdown(rate, load) if with_tiers else ())


def energy_only_day_cost(rate: CompiledRate, kwh_per_day: Decimal) -> Decimal:
    """Cost of ``kwh_per_day`` with no time information: flat rate (or the mean TOU price) + blocks."""
    price = rate.flat_or_average
    if not rate.spec.block_tiers:
        return kwh_per_day * price
    if rate.spec.block_basis == "day":
        return apply_blocks(rate, kwh_per_day, kwh_per_day * price, D1)
    month_kwh = kwh_per_day * DAYS_PER_TYPICAL_MONTH
    return apply_blocks(rate, month_kwh, month_kwh * price, DAYS_PER_TYPICAL_MONTH) / DAYS_PER_TYPICAL_MONTH


@dataclass(frozen=True, slots=True)
class Periods:
    daily: Decimal
    monthly: Decimal
    annual: Decimal

    @staticmethod
    def from_daily(daily: Decimal) -> Periods:
        annual = daily * DAYS_PER_TYPICAL_YEAR
        return Periods(daily, annual / MONTHS_PER_YEAR, annual)


def mean_price_over(rate: CompiledRate, schedule: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """Time-weighted typical-year price over schedule windows (e.g. an EV charging window)."""
    hours = D0
    integral = D0
    for s, e in schedule:
        hours += e - s
        integral += rate.typical.integral_wrapped(s, e)
    if hours <= 0:
        return rate.flat_or_average
    return integral / hours
