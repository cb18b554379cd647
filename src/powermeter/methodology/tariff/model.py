"""The tariff engine's vocabulary: constants, the input error, and the rate and device types."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

D0 = Decimal(0)
D1 = Decimal(1)
HOURS_PER_DAY = Decimal(24)
DAYS_PER_TYPICAL_YEAR = Decimal(365)
MONTHS_PER_YEAR = Decimal(12)
DAYS_PER_WEEK = Decimal(7)
DAYS_PER_TYPICAL_MONTH = DAYS_PER_TYPICAL_YEAR / MONTHS_PER_YEAR  # 30.4166…
W_PER_KW = Decimal(1000)
WH_PER_KWH = Decimal(1000)
MAX_PERIOD_DAYS = 366

# Defaults whose provenance is in the research note (cost_anchors.md §5) and docs/methodology.md.
DEFAULT_EV_CHARGING_EFFICIENCY = Decimal("0.88")  # L2 / wallbox; support.evcs.com 88–94 %, ADAC 5–10 % loss
DEFAULT_ADAPTER_EFFICIENCY = Decimal("0.85")  # assumption: 0.80–0.90 reasonable, no stored source
DEFAULT_ROUND_TRIP_EFFICIENCY = Decimal("0.90")  # Powerwall 2 owner report; HOMER splits √RTE each way
DEFAULT_CYCLES_PER_YEAR = 365

DAY_KINDS = ("all", "weekday", "weekend")
BLOCK_BASES = ("month", "day")

RATE_CONFIG_KEYS = frozenset(
    {
        "flat_rate",
        "currency",
        "tou_tiers",
        "seasons",
        "fixed_daily_charge",
        "fixed_monthly_charge",
        "block_tiers",
        "block_basis",
        "timezone",
        "holidays_as_weekend",
        "holidays_calendar",
    }
)
# descriptive keys a client may carry along with a rate (ignored by the engine)
RATE_CONFIG_LABELS = frozenset(
    {"id", "name", "utility", "plan", "region", "source", "source_url", "notes", "description", "effective_date"}
)


class TariffInputError(ValueError):
    """Invalid tariff, schedule or device input; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TouTier:
    """One time-of-use price window in local wall-clock hours.

    ``end_hour < start_hour`` or ``end_hour > 24`` wraps midnight. ``days`` is ``all``, ``weekday``
    or ``weekend``; ``months`` (1–12) restricts the tier to a season (``None`` = all year).
    """

    name: str
    start_hour: Decimal
    end_hour: Decimal
    rate: Decimal
    days: str = "all"
    months: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class BlockTier:
    """A consumption block: kWh up to ``up_to_kwh`` (cumulative, per ``block_basis``).

    ``rate`` replaces the time-based price for kWh in the block; when ``rate`` is ``None`` the block
    adds ``adj`` to the time-based price (baseline credits, URDB tier adjustments).
    """

    up_to_kwh: Decimal | None
    rate: Decimal | None = None
    adj: Decimal = D0


@dataclass(frozen=True, slots=True)
class RateSpec:
    currency: str = "USD"
    flat_rate: Decimal | None = None
    tou_tiers: tuple[TouTier, ...] = ()
    fixed_daily_charge: Decimal = D0
    block_tiers: tuple[BlockTier, ...] = ()
    block_basis: str = "month"
    timezone: str | None = None
    holidays_as_weekend: bool = False


@dataclass(frozen=True, slots=True)
class PowerState:
    name: str
    watts: Decimal
    hours_per_day: Decimal
    schedule: tuple[tuple[Decimal, Decimal], ...] | None = None


@dataclass(frozen=True, slots=True)
class DeviceUsage:
    watts: Decimal | None = None
    hours_per_day: Decimal | None = None
    schedule: tuple[tuple[Decimal, Decimal], ...] | None = None
    kwh_per_use: Decimal | None = None
    uses_per_week: Decimal | None = None
    power_states: tuple[PowerState, ...] = ()
    shiftable: bool = False
