"""Electricity tariff engine: what running a device costs under a flat, time-of-use or block tariff.

Pure functions only (stdlib ``decimal``, ``fractions``, ``zoneinfo``); no I/O, settings or clock.

Conventions (documented in docs/methodology.md, section "cost"):

* Money and energy are :class:`~decimal.Decimal`, built from strings, never rounded inside the
  engine; :func:`round_money` is applied by the caller at the response edge (4 decimals).
* A *typical year* has 365 days; ``annual = daily × 365`` and ``monthly = annual / 12``.
  Seasonal and weekday/weekend prices are averaged over a non-leap year (each month weighted by its
  days, weekdays 5/7 and weekend days 2/7).
* Tariff windows (``start_hour``, ``end_hour``) are *local wall-clock* hours. A window may wrap
  midnight (``end_hour < start_hour`` or ``end_hour > 24``); wrapped windows apply per calendar day
  (URDB semantics: ``[21, 8]`` means 21:00–24:00 and 00:00–08:00 of every day the tier applies to).
* Device schedules ``[start_hour, end_hour]`` belong to the local date they start on; ``end_hour``
  may exceed 24 (``[22, 30]`` = 22:00 → 06:00 next day). When real dates and a time zone are given,
  the engine computes on absolute (UTC) time, so a 22→30 window lasts 7 h on a spring-forward night
  and 9 h on a fall-back night.

The engine is a package, one module per concern (callers import from the package itself):

* ``model``: constants, :class:`TariffInputError`, the rate and device types;
* ``numbers``: input bounds, :func:`dec` (numbers in) and :func:`round_money` (money out);
* ``parse``: ``rateConfig``, schedules and ``device`` objects → validated types;
* ``profile``, ``compile``: piecewise prices over a local day; a rate compiled per (month, day kind);
* ``local_time``: seasons and weekday/weekend, typical-year weights, wall clock ↔ UTC across DST;
* ``load``, ``typical_day``, ``device``: loads, typical-day pricing, the calculator's device modes;
* ``period``: real dates priced on elapsed time; ``shift``: cheapest window; ``battery``: charging, arbitrage.
"""

from __future__ import annotations

from powermeter.methodology.tariff.battery import (
    ArbitrageResult,
    ChargingCost,
    arbitrage,
    electronics_charging_cost,
    ev_charging_cost,
)
from powermeter.methodology.tariff.compile import (
    CompiledRate,
    compile_rate,
)
from powermeter.methodology.tariff.device import (
    CostResult,
    HouseholdCost,
    device_cost,
    household_cost,
)
from powermeter.methodology.tariff.load import (
    Load,
    Window,
    scheduled_load,
)
from powermeter.methodology.tariff.model import (
    BLOCK_BASES,
    D0,
    D1,
    DAY_KINDS,
    DAYS_PER_TYPICAL_MONTH,
    DAYS_PER_TYPICAL_YEAR,
    DAYS_PER_WEEK,
    DEFAULT_ADAPTER_EFFICIENCY,
    DEFAULT_CYCLES_PER_YEAR,
    DEFAULT_EV_CHARGING_EFFICIENCY,
    DEFAULT_ROUND_TRIP_EFFICIENCY,
    HOURS_PER_DAY,
    MAX_PERIOD_DAYS,
    MONTHS_PER_YEAR,
    RATE_CONFIG_KEYS,
    RATE_CONFIG_LABELS,
    W_PER_KW,
    WH_PER_KWH,
    BlockTier,
    DeviceUsage,
    PowerState,
    RateSpec,
    TariffInputError,
    TouTier,
)
from powermeter.methodology.tariff.numbers import (
    INPUT_BOUNDS,
    bounds_of,
    dec,
    round_money,
)
from powermeter.methodology.tariff.parse import (
    check_schedule,
    device_usage,
    parse_device,
    parse_rate_config,
    parse_schedule,
)
from powermeter.methodology.tariff.period import (
    DayUse,
    PeriodCost,
    period_cost,
)
from powermeter.methodology.tariff.profile import (
    Profile,
)
from powermeter.methodology.tariff.shift import (
    ShiftResult,
    cheapest_start,
    shift_savings,
)
from powermeter.methodology.tariff.typical_day import (
    DayCost,
    Periods,
    TierUse,
    apply_blocks,
    energy_only_day_cost,
    mean_price_over,
    tier_breakdown,
    time_cost,
    typical_day_cost,
)

__all__ = [
    "BLOCK_BASES",
    "D0",
    "D1",
    "DAYS_PER_TYPICAL_MONTH",
    "DAYS_PER_TYPICAL_YEAR",
    "DAYS_PER_WEEK",
    "DAY_KINDS",
    "DEFAULT_ADAPTER_EFFICIENCY",
    "DEFAULT_CYCLES_PER_YEAR",
    "DEFAULT_EV_CHARGING_EFFICIENCY",
    "DEFAULT_ROUND_TRIP_EFFICIENCY",
    "HOURS_PER_DAY",
    "INPUT_BOUNDS",
    "MAX_PERIOD_DAYS",
    "MONTHS_PER_YEAR",
    "RATE_CONFIG_KEYS",
    "RATE_CONFIG_LABELS",
    "WH_PER_KWH",
    "W_PER_KW",
    "ArbitrageResult",
    "BlockTier",
    "ChargingCost",
    "CompiledRate",
    "CostResult",
    "DayCost",
    "DayUse",
    "DeviceUsage",
    "HouseholdCost",
    "Load",
    "PeriodCost",
    "Periods",
    "PowerState",
    "Profile",
    "RateSpec",
    "ShiftResult",
    "TariffInputError",
    "TierUse",
    "TouTier",
    "Window",
    "apply_blocks",
    "arbitrage",
    "bounds_of",
    "cheapest_start",
    "check_schedule",
    "compile_rate",
    "dec",
    "device_cost",
    "device_usage",
    "electronics_charging_cost",
    "energy_only_day_cost",
    "ev_charging_cost",
    "household_cost",
    "mean_price_over",
    "parse_device",
    "parse_rate_config",
    "parse_schedule",
    "period_cost",
    "round_money",
    "scheduled_load",
    "shift_savings",
    "tier_breakdown",
    "time_cost",
    "typical_day_cost",
]
