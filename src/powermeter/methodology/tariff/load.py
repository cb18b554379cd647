"""Loads: when a device draws power during a local day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from powermeter.methodology.tariff.model import D0, HOURS_PER_DAY, W_PER_KW, TariffInputError


@dataclass(frozen=True, slots=True)
class Window:
    """A run window owned by its start day: ``start`` in [0, 24), ``start < end ≤ start + 24``."""

    start: Decimal
    end: Decimal
    power_kw: Decimal  # average draw inside the window (duty cycle folded in)

    @property
    def hours(self) -> Decimal:
        return self.end - self.start

    def pieces(self) -> tuple[tuple[Decimal, Decimal], ...]:
        if self.end <= HOURS_PER_DAY:
            return ((self.start, self.end),)
        return ((self.start, HOURS_PER_DAY), (D0, self.end - HOURS_PER_DAY))


@dataclass(frozen=True, slots=True)
class Load:
    windows: tuple[Window, ...]

    @property
    def kwh_per_day(self) -> Decimal:
        return sum((w.power_kw * w.hours for w in self.windows), D0)


def scheduled_load(
    watts: Decimal,
    schedule: Sequence[tuple[Decimal, Decimal]],
    hours_per_day: Decimal | None,
    field: str = "device",
) -> Load:
    """Spread ``hours_per_day`` of running at ``watts`` evenly over the schedule windows.

    Without ``hours_per_day`` the device runs the whole schedule. ``hours_per_day`` larger than the
    schedule's span is an error (the device cannot run longer than it is scheduled).
    """
    span = sum((e - s for s, e in schedule), D0)
    if hours_per_day is None:
        hours_per_day = span
    if hours_per_day > span:
        raise TariffInputError(
            f"{field}.hours_per_day",
            f"{hours_per_day} h exceeds the schedule's {span} h; lengthen the schedule or lower hours_per_day",
        )
    kw = watts / W_PER_KW * (hours_per_day / span)
    return Load(tuple(Window(s, e, kw) for s, e in schedule))
