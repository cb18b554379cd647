"""Grid carbon intensity: fuel mix → intensity, unit conversions, and a naive forecast.

Pure functions. The per-fuel factor sets and the fuel-name aliases are data
(``powermeter/data/grid/fuel_factors.csv`` and ``fuel_aliases.csv``); they are passed in, so a
result can always name the factor set (and its content hash) it was computed with.

Production-based average intensity of one time step (Electricity Maps' and gridemissions'
formula, see docs/methodology.md "Grid intensity")::

    CI = Σ_f (P_f · EF_f) / Σ_f P_f          [g CO2e/kWh]

over the generating fuels ``f`` with power ``P_f`` (MW, any consistent unit) and emission factor
``EF_f`` (g CO2e/kWh). Rules:

- columns mapped to ``excluded`` (imports, load, timestamps) are left out: the intensity is of
  what the region generates;
- negative values (storage charging, exports reported as negative generation) count as zero;
- storage discharge carries the intensity of the rest of the mix at that step (its energy was
  charged from that grid), which is the same as leaving it out of both sums; Electricity Maps
  uses the zone's annual mean instead;
- a column not in the alias table is counted with the ``unknown`` factor and reported back.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: WattTime reports MOER/AOER in lb CO2/MWh; 1 lb = 453.59237 g and 1 MWh = 1000 kWh, so
#: g/kWh = lb/MWh × 0.45359237 (exact, by the definition of the avoirdupois pound; the same
#: conversion as the Carbon Aware SDK's WattTime source, ``value * 453.59237 / 1000``).
G_PER_KWH_PER_LB_PER_MWH = 0.45359237

STORAGE = "storage"
EXCLUDED = "excluded"
UNKNOWN = "unknown"


def lb_per_mwh_to_g_per_kwh(value_lb_per_mwh: float) -> float:
    return value_lb_per_mwh * G_PER_KWH_PER_LB_PER_MWH


def normalise_fuel_name(name: str) -> str:
    """Lower-case, single-spaced column name, as the alias table stores them."""
    return " ".join(name.replace("_", " ").split()).lower()


@dataclass(frozen=True, slots=True)
class FuelMixIntensity:
    """Intensity of one fuel-mix snapshot, with what went into it."""

    intensity_g_per_kwh: float
    generation_mw: float
    contributions_g_per_kwh: Mapping[str, float]
    """Each fuel's share of the intensity (P_f·EF_f / Σ P); they sum to ``intensity_g_per_kwh``."""
    unmapped: tuple[str, ...]
    """Column names that were not in the alias table (counted with the ``unknown`` factor)."""
    storage_mw: float
    """Storage discharge left out of both sums (it carries the rest of the mix's intensity)."""


def intensity_from_fuel_mix(
    mix_mw: Mapping[str, float | None],
    factors_g_per_kwh: Mapping[str, float],
    aliases: Mapping[str, str],
) -> FuelMixIntensity:
    """Average production-based intensity of a fuel mix.

    ``mix_mw`` maps column names as the data source spells them (``"Natural Gas"``,
    ``"Coal and Lignite"``) to power; ``aliases`` maps normalised names to canonical fuels (or
    ``storage`` / ``excluded``); ``factors_g_per_kwh`` maps canonical fuels to factors and must
    contain ``unknown``. Raises ``ValueError`` when nothing is generating.
    """
    unknown_factor = factors_g_per_kwh[UNKNOWN]
    per_fuel_mw: dict[str, float] = {}
    unmapped: list[str] = []
    storage_mw = 0.0
    for column, raw in mix_mw.items():
        if raw is None:
            continue
        mw = float(raw)
        if mw != mw:  # NaN: a missing reading
            continue
        fuel = aliases.get(normalise_fuel_name(column))
        if fuel == EXCLUDED:
            continue
        if fuel is None:
            unmapped.append(column)
            fuel = UNKNOWN
        if mw <= 0.0:
            continue
        if fuel == STORAGE:
            storage_mw += mw
            continue
        if fuel not in factors_g_per_kwh:
            fuel = UNKNOWN
        per_fuel_mw[fuel] = per_fuel_mw.get(fuel, 0.0) + mw
    total_mw = sum(per_fuel_mw.values())
    if total_mw <= 0.0:
        raise ValueError("fuel mix has no positive generation")
    contributions = {
        fuel: mw * factors_g_per_kwh.get(fuel, unknown_factor) / total_mw for fuel, mw in per_fuel_mw.items()
    }
    return FuelMixIntensity(
        intensity_g_per_kwh=sum(contributions.values()),
        generation_mw=total_mw,
        contributions_g_per_kwh=contributions,
        unmapped=tuple(unmapped),
        storage_mw=storage_mw,
    )


# --------------------------------------------------------------------------------------------
# Time series helpers (step functions: a value holds from its timestamp until the next one)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """A region's intensity time series, sorted, as parallel tuples (cheap to bisect).

    ``starts_s`` are POSIX seconds (UTC); every value holds for ``step_s`` seconds.
    """

    starts_s: tuple[float, ...]
    values: tuple[float, ...]
    step_s: float

    @classmethod
    def from_points(cls, points: Iterable[tuple[datetime, float]], step: timedelta | None = None) -> Series:
        pts = sorted((t.timestamp(), float(v)) for t, v in points)
        if not pts:
            raise ValueError("empty series")
        # Later duplicates of a timestamp win (a corrected value replaces the first one).
        dedup: dict[float, float] = {}
        for t, v in pts:
            dedup[t] = v
        starts = tuple(dedup)
        values = tuple(dedup.values())
        step_s = step.total_seconds() if step is not None else infer_step_s(starts)
        return cls(starts, values, step_s)

    @property
    def end_s(self) -> float:
        """First instant not covered by the series."""
        return self.starts_s[-1] + self.step_s

    def index_at(self, t_s: float) -> int | None:
        """Index of the point covering ``t_s`` or ``None`` outside the series' span."""
        if t_s < self.starts_s[0] or t_s >= self.end_s:
            return None
        i = bisect.bisect_right(self.starts_s, t_s) - 1
        # A gap longer than one step leaves the instant uncovered.
        if t_s - self.starts_s[i] >= self.step_s and i + 1 < len(self.starts_s):
            return None
        return i

    def value_at(self, t_s: float) -> float | None:
        i = self.index_at(t_s)
        return None if i is None else self.values[i]

    def window(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """Points whose interval ``[t, t+step)`` overlaps ``[start_s, end_s)`` (CASDK's rule)."""
        lo = bisect.bisect_right(self.starts_s, start_s - self.step_s)
        hi = bisect.bisect_left(self.starts_s, end_s)
        return [(self.starts_s[i], self.values[i]) for i in range(lo, hi)]


def infer_step_s(starts_s: Sequence[float]) -> float:
    """The series' time step: the (lower) median gap between consecutive points (1 h for one point)."""
    if len(starts_s) < 2:
        return 3600.0
    gaps = sorted(b - a for a, b in itertools.pairwise(starts_s) if b > a)
    if not gaps:
        return 3600.0
    return gaps[(len(gaps) - 1) // 2]


SEASON_S = 86_400.0
"""Season of the naive forecast: one day (grid intensity follows the daily solar/load cycle)."""


def seasonal_naive_value(series: Series, t_s: float, season_s: float = SEASON_S) -> float:
    """Naive estimate of the value at ``t_s``.

    Inside the series: the recorded value. Otherwise the value at the same time of day on the
    nearest covered day (``t − k·season`` for the smallest k ≥ 1 that lands in the series, or
    ``t + k·season`` before its start); when the series is shorter than a season or the
    instant falls in a gap, persistence (the last value before ``t``, else the first value).
    """
    v = series.value_at(t_s)
    if v is not None:
        return v
    if t_s >= series.end_s:
        k = int((t_s - series.starts_s[-1]) // season_s)
        for kk in (k, k + 1):
            if kk >= 1:
                v = series.value_at(t_s - kk * season_s)
                if v is not None:
                    return v
        return series.values[-1]
    if t_s < series.starts_s[0]:
        k = int((series.starts_s[0] - t_s) // season_s)
        for kk in (k, k + 1):
            if kk >= 1:
                v = series.value_at(t_s + kk * season_s)
                if v is not None:
                    return v
        return series.values[0]
    i = bisect.bisect_right(series.starts_s, t_s) - 1
    return series.values[max(i, 0)]


def seasonal_naive_forecast(
    series: Series, start_s: float, steps: int, step_s: float | None = None, season_s: float = SEASON_S
) -> list[tuple[float, float]]:
    """``steps`` points from ``start_s``: each is the value one season earlier (see above)."""
    dt = series.step_s if step_s is None else step_s
    return [(start_s + i * dt, seasonal_naive_value(series, start_s + i * dt, season_s)) for i in range(steps)]


def time_weighted_mean(points: Sequence[tuple[float, float]], step_s: float, start_s: float, end_s: float) -> float:
    """Mean of a step series over ``[start_s, end_s)``, each point weighted by its overlap.

    Raises ``ValueError`` when the points do not cover the whole period (like CASDK's
    ``AverageOverPeriod``, which refuses to average over gaps).
    """
    if end_s <= start_s:
        raise ValueError("empty period")
    total = 0.0
    covered = 0.0
    for t, v in points:
        lo = max(t, start_s)
        hi = min(t + step_s, end_s)
        if hi > lo:
            total += v * (hi - lo)
            covered += hi - lo
    if covered + 1e-6 < end_s - start_s:
        raise ValueError("the data do not cover the period")
    return total / covered


def rolling_window_means(
    points: Sequence[tuple[float, float]], step_s: float, window_s: float
) -> list[tuple[float, float]]:
    """Time-weighted mean over ``[t_i, t_i + window)`` for every start ``t_i`` whose window is
    covered by the points (the Carbon Aware SDK's ``RollingAverage`` for forecasts).

    A zero window returns the points themselves.
    """
    if window_s <= 0:
        return list(points)
    if not points:
        return []
    last_end = points[-1][0] + step_s
    out: list[tuple[float, float]] = []
    for i, (t, _) in enumerate(points):
        if t + window_s > last_end + 1e-6:
            break
        total = 0.0
        covered = 0.0
        for tj, vj in points[i:]:
            if tj >= t + window_s:
                break
            hi = min(tj + step_s, t + window_s)
            total += vj * (hi - tj)
            covered += hi - tj
        out.append((t, total / covered))
    return out
