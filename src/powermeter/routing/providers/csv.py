"""``csv``: replays a user time series ``region,timestamp,intensity`` from a CSV file."""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from powermeter.data.grid import region_key
from powermeter.data.locations import LocationIndex, load_locations
from powermeter.methodology.grid import (
    Series,
    seasonal_naive_forecast,
    seasonal_naive_value,
)
from powermeter.routing.providers.base import IntensityPoint, RegionNotCovered, Signal, parse_time, utc

log = logging.getLogger(__name__)

_REGION_COLUMNS = ("region", "zone", "zone id", "zone_id", "location", "ba", "balancing_authority")
_TIME_COLUMNS = ("timestamp", "datetime", "datetime (utc)", "time", "period", "point_time")
_VALUE_PREFIXES = ("intensity", "carbon intensity", "carbon_intensity", "co2_g_per_kwh", "value", "rating")


def _pick(fieldnames: Sequence[str], exact: Sequence[str], prefixes: Sequence[str] = ()) -> str | None:
    lowered = {f.strip().lower(): f for f in fieldnames}
    for name in exact:
        if name in lowered:
            return lowered[name]
    for f in fieldnames:
        lf = f.strip().lower()
        if any(lf.startswith(p) for p in prefixes):
            return f
    return None


class CsvProvider:
    """Replays a time series ``region,timestamp,intensity`` (g CO2e/kWh) from a CSV file.

    Column names are matched case-insensitively; Electricity Maps portal exports
    (``Datetime (UTC)``, ``Zone id``, ``Carbon intensity gCO₂eq/kWh (...)``) work as they are. Region
    names are canonicalised through the locations dataset when it knows them (``US-CAL-CISO`` →
    ``CAISO``); a cloud region without its own series uses its grid region's series.
    """

    name = "csv"

    def __init__(
        self,
        path: Path | str,
        *,
        signal: Signal = "average",
        locations: LocationIndex | None = None,
        reload_check_s: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.signal = signal
        self.locations = locations or load_locations()
        self.reload_check_s = reload_check_s
        self._series: dict[str, Series] = {}
        self._codes: dict[str, str] = {}
        self._mtime_ns = -1
        self._checked_at = -math.inf
        self._load()

    # -- loading

    def _canonical(self, name: str) -> str:
        loc = self.locations.resolve(name)
        return loc.code if loc is not None else name.strip()

    def _load(self) -> None:
        stat = self.path.stat()
        with self.path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(row for row in fh if row.strip() and not row.startswith("#"))
            fields = reader.fieldnames or []
            rcol = _pick(fields, _REGION_COLUMNS)
            tcol = _pick(fields, _TIME_COLUMNS)
            vcol = _pick(fields, (), _VALUE_PREFIXES)
            if rcol is None or tcol is None or vcol is None:
                raise ValueError(f"{self.path}: need region, timestamp and intensity columns, got {fields}")
            points: dict[str, list[tuple[datetime, float]]] = {}
            for lineno, row in enumerate(reader, start=2):
                raw = (row.get(vcol) or "").strip()
                if not raw:
                    continue
                try:
                    value = float(raw)
                    ts = parse_time(row[tcol])
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{self.path}:{lineno}: {exc}") from exc
                if not 0.0 <= value <= 5000.0:
                    raise ValueError(f"{self.path}:{lineno}: implausible intensity {value}")
                code = self._canonical(row[rcol])
                points.setdefault(code, []).append((ts, value))
        self._series = {region_key(code): Series.from_points(pts) for code, pts in points.items()}
        self._codes = {region_key(code): code for code in points}
        self._mtime_ns = stat.st_mtime_ns

    def _maybe_reload(self) -> None:
        t = time.monotonic()
        if t - self._checked_at < self.reload_check_s:
            return
        self._checked_at = t
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return  # keep serving what we have
        if mtime != self._mtime_ns:
            try:
                self._load()
                log.info("reloaded grid csv %s", self.path)
            except (OSError, ValueError) as exc:  # a half-written file: keep the old data
                log.warning("grid csv %s not reloaded: %s", self.path, exc)

    def reload(self) -> None:
        self._load()

    # -- lookups

    def regions(self) -> Sequence[str]:
        self._maybe_reload()
        return list(self._codes.values())

    def _series_for(self, region: str) -> tuple[str, Series]:
        self._maybe_reload()
        s = self._series.get(region_key(region))
        if s is not None:
            return region, s
        loc = self.locations.resolve(region)
        if loc is not None:
            for key in (loc.code, loc.grid_region):
                if key and (s := self._series.get(region_key(key))) is not None:
                    return loc.code, s
        raise RegionNotCovered(f"{self.path.name} has no series for {region!r}")

    def _detail(self, series_region: str) -> str:
        return f"{self.path.name} (replayed series)"

    def _point(self, region: str, s: Series, t_s: float, *, now_s: float, estimated: bool) -> IntensityPoint:
        value = s.value_at(t_s)
        est = estimated or value is None
        if value is None:
            value = seasonal_naive_value(s, t_s)
        # Align to the series' grid so the interval is the one the value describes.
        start_s = s.starts_s[0] + math.floor((t_s - s.starts_s[0]) / s.step_s) * s.step_s
        return IntensityPoint(
            region=region,
            timestamp=datetime.fromtimestamp(start_s, UTC),
            duration=timedelta(seconds=s.step_s),
            intensity_g_per_kwh=value,
            signal=self.signal,
            provider=self.name,
            detail=self._detail(region) + (" + seasonal-naive estimate" if est else ""),
            is_forecast=start_s > now_s,
            is_estimated=est,
        )

    async def current(self, region: str, now: datetime) -> IntensityPoint:
        return self.current_nowait(region, now)

    def current_nowait(self, region: str, now: datetime) -> IntensityPoint:
        code, s = self._series_for(region)
        t = utc(now).timestamp()
        return self._point(code, s, t, now_s=t, estimated=False)

    async def history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        code, s = self._series_for(region)
        start_s, end_s = utc(start).timestamp(), utc(end).timestamp()
        if end_s <= start_s:
            end_s = start_s + 1e-3  # a single instant: the point covering it
        return [
            IntensityPoint(
                code,
                datetime.fromtimestamp(t, UTC),
                timedelta(seconds=s.step_s),
                v,
                self.signal,
                self.name,
                self._detail(code),
            )
            for t, v in s.window(start_s, end_s)
        ]

    async def forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        code, s = self._series_for(region)
        now_s = utc(now).timestamp()
        first = s.starts_s[0] + math.floor((now_s - s.starts_s[0]) / s.step_s) * s.step_s
        steps = max(1, math.ceil(horizon.total_seconds() / s.step_s))
        return [
            self._point(code, s, t, now_s=now_s, estimated=False) for t, _ in seasonal_naive_forecast(s, first, steps)
        ]
