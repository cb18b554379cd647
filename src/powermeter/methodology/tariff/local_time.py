"""The local calendar and clock: which day kind and season a date is, typical-year weights, and
wall-clock hours ↔ absolute (UTC) time across DST transitions."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from powermeter.methodology.tariff.model import D0

# ---------------------------------------------------------------------------------------------
# day kinds and seasons over a typical (non-leap) year

NONLEAP_MONTH_DAYS = tuple(calendar.monthrange(2025, m)[1] for m in range(1, 13))
# every (month, is_weekend) a rate may price differently, in the order profiles are built
DAY_TYPES: tuple[tuple[int, bool], ...] = tuple((m, weekend) for m in range(1, 13) for weekend in (False, True))


def is_weekend(day: date, holidays: frozenset[date], holidays_as_weekend: bool) -> bool:
    """Saturday or Sunday, or a holiday when the rate prices holidays as weekend days."""
    return day.weekday() >= 5 or (holidays_as_weekend and day in holidays)


def tier_applies(days: str, months: frozenset[int] | None, month: int, weekend: bool) -> bool:
    """Whether a tier restricted to ``days`` (all/weekday/weekend) and ``months`` prices this day type."""
    return (months is None or month in months) and (days == "all" or (days == "weekend") == weekend)


def typical_year_weight(month: int, weekend: bool) -> Fraction:
    """Share of a typical 365-day year: the month by its days, weekdays 5/7 and weekend days 2/7."""
    return Fraction(NONLEAP_MONTH_DAYS[month - 1], 365) * (Fraction(2, 7) if weekend else Fraction(5, 7))


def day_type_label(month: int, weekend: bool) -> str:
    """`` (weekdays in Jan)``: where a profile applies, for error messages."""
    return f" ({'weekend' if weekend else 'weekday'}s in {calendar.month_abbr[month]})"


# ---------------------------------------------------------------------------------------------
# wall-clock hours ↔ absolute time


def wall_to_utc(day: date, hours: Decimal, tz: ZoneInfo, fold: int = 0) -> datetime:
    micro = int((hours * 3_600_000_000).to_integral_value(rounding=ROUND_HALF_UP))
    wall = datetime.combine(day, time()) + timedelta(microseconds=micro)
    return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def hours_between(a: datetime, b: datetime) -> Decimal:
    return Decimal((b - a) // timedelta(microseconds=1)) / Decimal(3_600_000_000)


def wall_hour(u: datetime, tz: ZoneInfo) -> tuple[date, Decimal]:
    w = u.astimezone(tz)
    h = (
        Decimal(w.hour)
        + Decimal(w.minute) / 60
        + Decimal(w.second) / 3600
        + Decimal(w.microsecond) / Decimal(3_600_000_000)
    )
    return w.date(), h


def transitions(day: date, tz: ZoneInfo) -> list[datetime]:
    """UTC instants where the zone's offset changes during local ``day`` (bisected to the second)."""
    lo = wall_to_utc(day, D0, tz)
    hi = wall_to_utc(day + timedelta(days=1), D0, tz)
    if lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
        return []
    off_lo = lo.astimezone(tz).utcoffset()
    a, b = 0, int((hi - lo).total_seconds())
    while b - a > 1:
        mid = (a + b) // 2
        if (lo + timedelta(seconds=mid)).astimezone(tz).utcoffset() == off_lo:
            a = mid
        else:
            b = mid
    return [lo + timedelta(seconds=b)]
