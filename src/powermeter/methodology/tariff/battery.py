"""Batteries: EV and gadget charging cost, home-battery arbitrage."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from powermeter.methodology.tariff.model import (
    D0,
    D1,
    DAYS_PER_TYPICAL_YEAR,
    DEFAULT_ADAPTER_EFFICIENCY,
    DEFAULT_CYCLES_PER_YEAR,
    DEFAULT_EV_CHARGING_EFFICIENCY,
    DEFAULT_ROUND_TRIP_EFFICIENCY,
    MONTHS_PER_YEAR,
    WH_PER_KWH,
    TariffInputError,
)
from powermeter.methodology.tariff.typical_day import Periods


@dataclass(frozen=True, slots=True)
class ChargingCost:
    kwh_to_battery_per_day: Decimal
    kwh_from_wall_per_day: Decimal
    efficiency: Decimal
    price_per_kwh: Decimal
    cost: Periods
    full_charge_kwh_from_wall: Decimal
    full_charge_cost: Decimal
    cost_per_mile: Decimal | None = None
    charges_per_month: Decimal | None = None


def ev_charging_cost(
    battery_kwh: Decimal,
    miles_per_month: Decimal,
    efficiency_mi_per_kwh: Decimal,
    price_per_kwh: Decimal,
    charging_efficiency: Decimal = DEFAULT_EV_CHARGING_EFFICIENCY,
) -> ChargingCost:
    """EV charging: ``kWh_wall = miles / (mi/kWh) / η_charge``; monthly = the given month, annual = ×12.

    ``efficiency_mi_per_kwh`` is battery-side (what the car shows); pass ``charging_efficiency = 1``
    when it already includes charger losses (EPA ratings do).
    """
    _positive(efficiency_mi_per_kwh, "efficiency_mi_per_kwh")
    _fraction(charging_efficiency, "charging_efficiency")
    _positive(battery_kwh, "battery_kwh")
    if miles_per_month < 0:
        raise TariffInputError("miles_per_month", "must be ≥ 0")
    kwh_batt_month = miles_per_month / efficiency_mi_per_kwh
    kwh_wall_month = kwh_batt_month / charging_efficiency
    monthly = kwh_wall_month * price_per_kwh
    annual = monthly * MONTHS_PER_YEAR
    daily = annual / DAYS_PER_TYPICAL_YEAR
    per_day_batt = kwh_batt_month * MONTHS_PER_YEAR / DAYS_PER_TYPICAL_YEAR
    full_wall = battery_kwh / charging_efficiency
    return ChargingCost(
        kwh_to_battery_per_day=per_day_batt,
        kwh_from_wall_per_day=per_day_batt / charging_efficiency,
        efficiency=charging_efficiency,
        price_per_kwh=price_per_kwh,
        cost=Periods(daily, monthly, annual),
        full_charge_kwh_from_wall=full_wall,
        full_charge_cost=full_wall * price_per_kwh,
        cost_per_mile=None if miles_per_month == 0 else monthly / miles_per_month,
        charges_per_month=kwh_batt_month / battery_kwh,
    )


def electronics_charging_cost(
    battery_wh: Decimal,
    charges_per_day: Decimal,
    price_per_kwh: Decimal,
    adapter_efficiency: Decimal = DEFAULT_ADAPTER_EFFICIENCY,
) -> ChargingCost:
    """Gadget charging: ``kWh_wall/day = Wh × charges/day / η_adapter / 1000``."""
    _positive(battery_wh, "battery_wh")
    _fraction(adapter_efficiency, "charger_efficiency")
    if charges_per_day < 0:
        raise TariffInputError("charges_per_day", "must be ≥ 0")
    kwh_batt = battery_wh * charges_per_day / WH_PER_KWH
    kwh_wall = kwh_batt / adapter_efficiency
    full_wall = battery_wh / WH_PER_KWH / adapter_efficiency
    return ChargingCost(
        kwh_to_battery_per_day=kwh_batt,
        kwh_from_wall_per_day=kwh_wall,
        efficiency=adapter_efficiency,
        price_per_kwh=price_per_kwh,
        cost=Periods.from_daily(kwh_wall * price_per_kwh),
        full_charge_kwh_from_wall=full_wall,
        full_charge_cost=full_wall * price_per_kwh,
    )


@dataclass(frozen=True, slots=True)
class ArbitrageResult:
    usable_kwh: Decimal  # delivered per cycle
    kwh_bought_per_cycle: Decimal
    revenue_per_cycle: Decimal
    charge_cost_per_cycle: Decimal
    degradation_cost_per_cycle: Decimal
    savings_per_cycle: Decimal
    cycles_per_year: int
    annual_savings: Decimal
    breakeven_discharge_rate: Decimal
    profitable: bool


def arbitrage(
    battery_wh: Decimal,
    charge_rate: Decimal,
    discharge_rate: Decimal,
    *,
    round_trip_efficiency: Decimal = DEFAULT_ROUND_TRIP_EFFICIENCY,
    depth_of_discharge: Decimal = D1,
    cycles_per_year: int = DEFAULT_CYCLES_PER_YEAR,
    degradation_cost_per_kwh: Decimal = D0,
) -> ArbitrageResult:
    """Charge cheap, discharge dear: ``E_out = Wh/1000 × DoD``, ``E_in = E_out / RTE``;
    ``saving = E_out·p_dis − E_in·p_ch − E_out·c_deg`` per cycle (degradation per kWh *discharged*).
    """
    _positive(battery_wh, "battery_wh")
    _fraction(round_trip_efficiency, "round_trip_efficiency")
    _fraction(depth_of_discharge, "depth_of_discharge")
    if cycles_per_year < 0 or cycles_per_year > 3660:
        raise TariffInputError("cycles_per_year", "must be in [0, 3660]")
    if degradation_cost_per_kwh < 0:
        raise TariffInputError("degradation_cost_per_kwh", "must be ≥ 0")
    e_out = battery_wh / WH_PER_KWH * depth_of_discharge
    e_in = e_out / round_trip_efficiency
    revenue = e_out * discharge_rate
    charge_cost = e_in * charge_rate
    degradation = e_out * degradation_cost_per_kwh
    per_cycle = revenue - charge_cost - degradation
    return ArbitrageResult(
        usable_kwh=e_out,
        kwh_bought_per_cycle=e_in,
        revenue_per_cycle=revenue,
        charge_cost_per_cycle=charge_cost,
        degradation_cost_per_cycle=degradation,
        savings_per_cycle=per_cycle,
        cycles_per_year=cycles_per_year,
        annual_savings=per_cycle * cycles_per_year,
        breakeven_discharge_rate=charge_rate / round_trip_efficiency + degradation_cost_per_kwh,
        profitable=per_cycle > 0,
    )


def _positive(v: Decimal, field: str) -> None:
    if v <= 0:
        raise TariffInputError(field, f"must be greater than 0, got {v}")


def _fraction(v: Decimal, field: str) -> None:
    if not D0 < v <= D1:
        raise TariffInputError(field, f"must be in (0, 1], got {v}")
