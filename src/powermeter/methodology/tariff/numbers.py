"""Numbers in: every calculator input becomes a finite Decimal within its physical bounds; money out."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from powermeter.methodology.tariff.model import TariffInputError

_FOUR_PLACES = Decimal("0.0001")

# Physical bounds of every number the calculator accepts (docs/methodology.md, "Input bounds"). Each is far
# above any real household, fleet or grid-scale figure, and small enough that every product the engine
# forms (W × h × price × 365, kWh ÷ efficiency…) stays exact in 28-digit Decimal arithmetic, so money
# rounds without overflow. Keyed by the field's last name; ``(low, high)`` on the value itself.
_BIG = Decimal(10**9)
_PRICE = Decimal(10**6)  # per kWh in any currency (above hyper-inflated currencies' tariffs)
INPUT_BOUNDS: dict[str, tuple[Decimal, Decimal]] = {
    "watts": (-_BIG, _BIG),  # 1 GW: a large power station
    "kwh_per_use": (-_BIG, _BIG),
    "uses_per_week": (-Decimal(100_000), Decimal(100_000)),  # about one use every 6 s
    "rate": (-_PRICE, _PRICE),
    "flat_rate": (-_PRICE, _PRICE),
    "adj": (-_PRICE, _PRICE),
    "rate_per_kwh": (-_PRICE, _PRICE),
    "ratePerKwh": (-_PRICE, _PRICE),
    "charge_rate": (-_PRICE, _PRICE),
    "discharge_rate": (-_PRICE, _PRICE),
    "degradation_cost_per_kwh": (-_PRICE, _PRICE),
    "fixed_daily_charge": (-_PRICE, _PRICE),
    "fixed_monthly_charge": (-_PRICE, _PRICE),
    "up_to_kwh": (-_BIG, _BIG),
    "battery_kwh": (-Decimal(10**6), Decimal(10**6)),  # 1 GWh: the largest grid batteries
    "battery_wh": (-_BIG, _BIG),
    "battery_mah": (-_BIG, _BIG),
    "voltage": (-Decimal(1_000_000), Decimal(1_000_000)),  # 1 MV: transmission lines
    "miles_per_month": (-Decimal(10**7), Decimal(10**7)),
    "efficiency_mi_per_kwh": (Decimal("0.01"), Decimal(1000)),
    "charges_per_day": (-Decimal(10_000), Decimal(10_000)),
    "charges_per_week": (-Decimal(70_000), Decimal(70_000)),
    # efficiencies and depth of discharge: a fraction (0.01–1) or a percent (1–100)
    "charging_efficiency": (Decimal("0.01"), Decimal(100)),
    "chargingEfficiency": (Decimal("0.01"), Decimal(100)),
    "charger_efficiency": (Decimal("0.01"), Decimal(100)),
    "round_trip_efficiency": (Decimal("0.01"), Decimal(100)),
    "efficiency": (Decimal("0.01"), Decimal(100)),
    "depth_of_discharge": (Decimal("0.01"), Decimal(100)),
    "cycles_per_year": (Decimal(0), Decimal(3660)),
}
_DEFAULT_BOUNDS = (-_BIG, _BIG)
_INDEX_RE = re.compile(r"\[\d+\]")


def bounds_of(field: str) -> tuple[Decimal, Decimal]:
    """The accepted range of a calculator input, by its name (``device.power_states[0].watts`` → watts)."""
    leaf = _INDEX_RE.sub("", field).rsplit(".", 1)[-1]
    return INPUT_BOUNDS.get(leaf, _DEFAULT_BOUNDS)


def dec(value: object, field: str) -> Decimal:
    """A finite Decimal from an int, str, Decimal or float (floats go through ``repr``), within the
    field's physical bounds (:data:`INPUT_BOUNDS`)."""
    if isinstance(value, bool):
        raise TariffInputError(field, "must be a number")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise TariffInputError(field, f"must be a number, got {value!r}") from None
    else:
        raise TariffInputError(field, "must be a number")
    if not d.is_finite():
        raise TariffInputError(field, "must be a finite number")
    lo, hi = bounds_of(field)
    if not lo <= d <= hi:
        raise TariffInputError(field, f"must be between {lo:g} and {hi:g}, got {_short(d)}")
    return d


def _short(d: Decimal) -> str:
    text = str(d)
    return text if len(text) <= 24 else f"{d:.6e}"


def round_money(value: Decimal, places: Decimal = _FOUR_PLACES) -> Decimal:
    """Round half-up at the response edge (4 decimals unless told)."""
    return value.quantize(places, rounding=ROUND_HALF_UP)


def fmt_hours(h: Decimal) -> str:
    total_min = int((h * 60).to_integral_value(rounding=ROUND_HALF_UP))
    return f"{total_min // 60:02d}:{total_min % 60:02d}"
