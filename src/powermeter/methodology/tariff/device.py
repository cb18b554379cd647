"""Device and household cost: the calculator's modes (flat, tou, annual_kwh, power_states)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from powermeter.methodology.tariff.compile import CompiledRate, compile_rate
from powermeter.methodology.tariff.load import Load, Window, scheduled_load
from powermeter.methodology.tariff.model import (
    D0,
    D1,
    DAYS_PER_TYPICAL_MONTH,
    DAYS_PER_WEEK,
    W_PER_KW,
    DeviceUsage,
    TariffInputError,
)
from powermeter.methodology.tariff.typical_day import (
    Periods,
    TierUse,
    apply_blocks,
    energy_only_day_cost,
    typical_day_cost,
)


@dataclass(frozen=True, slots=True)
class CostResult:
    mode: str
    kwh_per_day: Decimal
    energy: Periods
    fixed_daily: Decimal
    currency: str
    tou_note: str | None = None
    tiers: tuple[TierUse, ...] = ()

    @property
    def total(self) -> Periods:
        return Periods.from_daily(self.energy.daily + self.fixed_daily)


_NOTE_NO_SCHEDULE = "TOU tiers exist for this rate but the device has no schedule; priced at the {what}"
_NOTE_ANNUAL = "TOU tiers are not applied in annual_kwh mode; priced at the {what}"
_NOTE_STATES = "TOU tiers apply to power_states only when every state has a schedule; priced at the {what}"


def _flat_what(rate: CompiledRate) -> str:
    return "flat rate" if rate.spec.flat_rate is not None else "time-weighted average TOU price"


def device_cost(
    rate: CompiledRate,
    device: DeviceUsage,
    *,
    include_fixed: bool = False,
    with_tiers: bool = False,
    field: str = "device",
) -> CostResult:
    """Daily/monthly/annual cost of a device; the mode is chosen as the seed describes.

    ``power_states`` → mode ``power_states``; ``kwh_per_use`` + ``uses_per_week`` → ``annual_kwh``;
    ``watts`` + ``hours_per_day`` (or a schedule) → ``tou`` when a schedule meets TOU tiers, else
    ``flat``.
    """
    fixed = rate.spec.fixed_daily_charge if include_fixed else D0
    note: str | None = None
    tiers: tuple[TierUse, ...] = ()
    if device.power_states:
        mode = "power_states"
        if rate.has_tou and all(s.schedule for s in device.power_states):
            windows: list[Window] = []
            for i, s in enumerate(device.power_states):
                windows += scheduled_load(
                    s.watts, s.schedule or (), s.hours_per_day, f"{field}.power_states[{i}]"
                ).windows
            dc = typical_day_cost(rate, Load(tuple(windows)), with_tiers=with_tiers)
            kwh, cost, tiers = dc.kwh, dc.energy_cost, dc.tiers
        else:
            kwh = sum((s.watts * s.hours_per_day for s in device.power_states), D0) / W_PER_KW
            cost = energy_only_day_cost(rate, kwh)
            if rate.has_tou:
                note = _NOTE_STATES.format(what=_flat_what(rate))
    elif device.kwh_per_use is not None or device.uses_per_week is not None:
        if device.kwh_per_use is None or device.uses_per_week is None:
            missing = "kwh_per_use" if device.kwh_per_use is None else "uses_per_week"
            raise TariffInputError(f"{field}.{missing}", "annual_kwh mode needs kwh_per_use and uses_per_week")
        mode = "annual_kwh"
        kwh = device.kwh_per_use * device.uses_per_week / DAYS_PER_WEEK
        cost = energy_only_day_cost(rate, kwh)
        if rate.has_tou:
            note = _NOTE_ANNUAL.format(what=_flat_what(rate))
    elif device.watts is not None:
        if device.schedule is not None and rate.has_tou:
            mode = "tou"
            load = scheduled_load(device.watts, device.schedule, device.hours_per_day, field)
            dc = typical_day_cost(rate, load, with_tiers=with_tiers)
            kwh, cost, tiers = dc.kwh, dc.energy_cost, dc.tiers
        else:
            mode = "flat"
            if device.hours_per_day is None and device.schedule is None:
                raise TariffInputError(f"{field}.hours_per_day", "is required with watts (or give a schedule)")
            if device.schedule is not None:
                hours = scheduled_load(device.watts, device.schedule, device.hours_per_day, field).kwh_per_day
                kwh = hours
            else:
                kwh = device.watts * (device.hours_per_day or D0) / W_PER_KW
            cost = energy_only_day_cost(rate, kwh)
            if rate.has_tou:
                note = _NOTE_NO_SCHEDULE.format(what=_flat_what(rate))
    else:
        raise TariffInputError(field, "give watts + hours_per_day, kwh_per_use + uses_per_week, or power_states")
    return CostResult(mode, kwh, Periods.from_daily(cost), fixed, rate.currency, note, tiers)


@dataclass(frozen=True, slots=True)
class HouseholdCost:
    devices: tuple[CostResult, ...]
    kwh_per_day: Decimal
    energy: Periods
    fixed_daily: Decimal

    @property
    def total(self) -> Periods:
        return Periods.from_daily(self.energy.daily + self.fixed_daily)


def household_cost(rate: CompiledRate, devices: Sequence[DeviceUsage], *, include_fixed: bool = False) -> HouseholdCost:
    """Every device's cost and the household total under one rate.

    Without block tiers the total is the sum of the devices. With block tiers the blocks apply to the
    household's combined kWh (that is how the bill is computed); each device is then charged its share
    of the household energy cost in proportion to its time-based cost (or its kWh when prices are 0),
    so the device costs add up to the total.
    """
    fixed = rate.spec.fixed_daily_charge if include_fixed else D0
    if not rate.spec.block_tiers:
        results = tuple(device_cost(rate, d, field=f"devices[{i}]") for i, d in enumerate(devices))
        kwh = sum((r.kwh_per_day for r in results), D0)
        daily = sum((r.energy.daily for r in results), D0)
        return HouseholdCost(results, kwh, Periods.from_daily(daily), fixed)
    spec = rate.spec
    flat = spec.flat_rate
    if flat is None and not spec.tou_tiers:
        flat = next(b.rate for b in spec.block_tiers if b.rate is not None)
    base = compile_rate(replace(spec, block_tiers=(), flat_rate=flat))
    pre = tuple(device_cost(base, d, field=f"devices[{i}]") for i, d in enumerate(devices))
    kwh = sum((r.kwh_per_day for r in pre), D0)
    time_based = sum((r.energy.daily for r in pre), D0)
    if spec.block_basis == "day":
        daily = apply_blocks(rate, kwh, time_based, D1)
    else:
        m = DAYS_PER_TYPICAL_MONTH
        daily = apply_blocks(rate, kwh * m, time_based * m, m) / m
    results_list: list[CostResult] = []
    for r in pre:
        share = r.energy.daily / time_based if time_based > 0 else r.kwh_per_day / kwh if kwh > 0 else D0
        results_list.append(replace(r, energy=Periods.from_daily(daily * share)))
    return HouseholdCost(tuple(results_list), kwh, Periods.from_daily(daily), fixed)
