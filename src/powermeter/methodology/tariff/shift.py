"""Shift savings: the cheapest continuous daily run window for a shiftable device."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from powermeter.methodology.tariff.compile import CompiledRate
from powermeter.methodology.tariff.load import scheduled_load
from powermeter.methodology.tariff.model import (
    D0,
    DAYS_PER_TYPICAL_YEAR,
    HOURS_PER_DAY,
    W_PER_KW,
    DeviceUsage,
    TariffInputError,
)
from powermeter.methodology.tariff.profile import Profile
from powermeter.methodology.tariff.typical_day import time_cost


@dataclass(frozen=True, slots=True)
class ShiftResult:
    duration_h: Decimal
    power_kw: Decimal
    current_cost: Decimal  # per day
    optimal_cost: Decimal  # per day
    optimal_start: Decimal
    baseline: str  # "schedule" or "average_start"

    @property
    def optimal_window(self) -> tuple[Decimal, Decimal]:
        return (self.optimal_start, self.optimal_start + self.duration_h)

    @property
    def daily_savings(self) -> Decimal:
        return self.current_cost - self.optimal_cost

    @property
    def annual_savings(self) -> Decimal:
        return self.daily_savings * DAYS_PER_TYPICAL_YEAR


def cheapest_start(profile: Profile, duration_h: Decimal) -> tuple[Decimal, Decimal]:
    """Start hour in [0, 24) minimising ∫ price over [start, start + duration) (cyclic day).

    The integral of a piecewise-constant price over a sliding window is piecewise linear in the
    start, so its minimum lies where the window's start or end meets a price edge: candidates are
    every edge ``b`` and ``b − duration`` (mod 24). Ties go to the earliest start.
    Returns ``(start, ∫price)``.
    """
    if not D0 < duration_h <= HOURS_PER_DAY:
        raise TariffInputError("device.hours_per_day", "must be in (0, 24] to search for a window")
    candidates = set()
    for b in profile.breaks[:-1]:
        candidates.add(b)
        back = b - duration_h
        candidates.add(back + HOURS_PER_DAY if back < 0 else back)  # Decimal % keeps the sign
    best_start = D0
    best = profile.integral_wrapped(D0, duration_h)
    for s in sorted(candidates):
        c = profile.integral_wrapped(s, s + duration_h)
        if c < best:
            best, best_start = c, s
    return best_start, best


def shift_savings(rate: CompiledRate, device: DeviceUsage, field: str = "device") -> ShiftResult | None:
    """Cheapest continuous daily run for a shiftable device; ``None`` when the rate has no TOU tiers.

    Baseline (``current_cost``): the device's schedule when it has one, else a run whose start is
    spread evenly over the day (equivalently the mean over all start times: duration × mean price).
    """
    if device.watts is None:
        raise TariffInputError(f"{field}.watts", "is required for shift-savings")
    if not device.shiftable:
        raise TariffInputError(f"{field}.shiftable", "must be true for shift-savings")
    if not rate.has_tou:
        return None
    if device.hours_per_day is None and device.schedule is None:
        raise TariffInputError(f"{field}.hours_per_day", "is required for shift-savings")
    if device.schedule is not None:
        load = scheduled_load(device.watts, device.schedule, device.hours_per_day, field)
        span = sum((w.hours for w in load.windows), D0)
        duration = device.hours_per_day if device.hours_per_day is not None else span
        current = time_cost(rate, load)
        baseline = "schedule"
    else:
        duration = device.hours_per_day or D0
        current = device.watts / W_PER_KW * duration * rate.average_price
        baseline = "average_start"
    if duration <= 0:
        raise TariffInputError(f"{field}.hours_per_day", "must be greater than 0")
    kw = device.watts / W_PER_KW
    start, integral = cheapest_start(rate.typical, duration)
    return ShiftResult(duration, kw, current, kw * integral, start, baseline)
