"""Grid carbon-intensity providers.

Every provider answers ``current``, ``history`` and ``forecast`` in g CO2e/kWh; every value is an
:class:`IntensityPoint` carrying its signal type (``average`` or ``marginal``), the provider that
produced it, the time it describes and how it was obtained.

- :class:`StaticProvider` (``static``): the annual figure per region from the shared locations
  dataset. Offline, always available, the fallback of every other provider.
- :class:`CsvProvider` (``csv``): replays a user time series ``region,timestamp,intensity`` (e.g. an
  EIA-930 derived series or an Electricity Maps portal export); history from the file, a
  seasonal-naive forecast (same time yesterday) beyond it. Reloads when the file changes.
- Live sources, opt-in by setting, wrapped in :class:`CachedProvider` (TTL cache,
  stale-while-revalidate, coalesced refreshes, exponential backoff, fallback to ``static`` with the
  reason in ``fallback_reason``):
  :class:`GridstatusSource` (ISO fuel mix × pinned factor set; BPA through EIA),
  :class:`WattTimeSource` (v3 API, marginal ``co2_moer`` or average ``co2_aoer``),
  :class:`ElectricityMapsSource` (``carbon-intensity/latest|past-range|forecast``).

Live sources talk HTTP through ``httpx.AsyncClient``; tests pass a transport that serves recorded
responses from ``tests/fixtures/grid/`` (no test touches the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import itertools
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from powermeter.data.grid import GridData, load_grid_data, region_key
from powermeter.data.locations import Location, LocationIndex, load_locations
from powermeter.methodology.grid import (
    Series,
    intensity_from_fuel_mix,
    lb_per_mwh_to_g_per_kwh,
    seasonal_naive_forecast,
    seasonal_naive_value,
)

log = logging.getLogger(__name__)

Signal = Literal["average", "marginal"]
PROVIDER_NAMES = ("static", "csv", "gridstatus", "watttime", "electricitymaps")


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    region: str
    """Canonical region code the value was asked for (``CAISO``, ``aws:us-west-1``)."""
    timestamp: datetime
    """Start of the interval the value describes (UTC)."""
    duration: timedelta
    intensity_g_per_kwh: float
    signal: Signal
    provider: str
    """Which provider produced the value: static, csv, gridstatus, watttime, electricitymaps."""
    detail: str
    """Where the number comes from (dataset and source, provider region id, factor set)."""
    is_forecast: bool = False
    is_estimated: bool = False
    fallback_reason: str | None = None
    """Set when a live or csv provider could not answer and ``static`` did instead."""


class ProviderError(Exception):
    """A provider could not answer."""


class RegionNotCovered(ProviderError):
    """The provider has no data for this region."""


class ProviderUnavailable(ProviderError):
    """A live provider failed (network, HTTP status, quota, auth)."""


class IntensityProvider(Protocol):
    name: str
    signal: Signal

    def regions(self) -> Sequence[str]: ...

    async def current(self, region: str, now: datetime) -> IntensityPoint: ...

    def current_nowait(self, region: str, now: datetime) -> IntensityPoint:
        """The current value without waiting on the network (live providers: the cached value, a
        refresh scheduled in the background; ``static`` with ``fallback_reason`` when none yet)."""
        ...

    async def history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]: ...

    async def forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]: ...


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_time(value: str) -> datetime:
    """ISO 8601 (``Z`` or offset; naive means UTC) or POSIX seconds."""
    v = value.strip()
    try:
        return datetime.fromtimestamp(float(v), UTC)
    except ValueError:
        pass
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    return utc(datetime.fromisoformat(v))


# --------------------------------------------------------------------------------------------
# static
# --------------------------------------------------------------------------------------------


class StaticProvider:
    """Annual average per region from the locations dataset (``signal = average``)."""

    name = "static"
    signal: Signal = "average"

    def __init__(self, locations: LocationIndex | None = None) -> None:
        self.locations = locations or load_locations()
        self._codes = [loc.code for loc in self.locations.all()]
        self._year_points: dict[str, IntensityPoint] = {}

    def regions(self) -> Sequence[str]:
        return self._codes

    def _loc(self, region: str) -> Location:
        loc = self.locations.resolve(region)
        if loc is None:
            raise RegionNotCovered(f"unknown region {region!r}")
        return loc

    def _point(self, loc: Location, start: datetime, duration: timedelta, *, forecast: bool = False) -> IntensityPoint:
        return IntensityPoint(
            region=loc.code,
            timestamp=start,
            duration=duration,
            intensity_g_per_kwh=loc.intensity_g_per_kwh,
            signal="average",
            provider=self.name,
            detail=f"{loc.year} annual average: {loc.source} (locations {self.locations.version})",
            is_forecast=forecast,
            is_estimated=True,
        )

    def year_point(self, region: str) -> IntensityPoint:
        cached = self._year_points.get(region)
        if cached is not None:
            return cached
        loc = self._loc(region)
        start = datetime(loc.year, 1, 1, tzinfo=UTC)
        point = self._point(loc, start, datetime(loc.year + 1, 1, 1, tzinfo=UTC) - start)
        if len(self._year_points) < 10_000:
            self._year_points[region] = point
        return point

    async def current(self, region: str, now: datetime) -> IntensityPoint:
        return self.year_point(region)

    def current_nowait(self, region: str, now: datetime | None = None) -> IntensityPoint:
        return self.year_point(region)

    async def history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        # One point spanning the period: the annual figure is all this provider knows.
        return [self._point(self._loc(region), utc(start), max(utc(end) - utc(start), timedelta(0)))]

    async def forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        return [self._point(self._loc(region), utc(now), horizon, forecast=True)]


# --------------------------------------------------------------------------------------------
# csv
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# fallback wrapper and the live-source cache
# --------------------------------------------------------------------------------------------


def _fallback(point: IntensityPoint, reason: str) -> IntensityPoint:
    return dataclasses.replace(point, fallback_reason=reason)


class WithFallback:
    """``primary`` where it has data, ``static`` (saying so) where it has not."""

    def __init__(self, primary: IntensityProvider, fallback: StaticProvider) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.signal = primary.signal

    def regions(self) -> Sequence[str]:
        return self.primary.regions()

    async def current(self, region: str, now: datetime) -> IntensityPoint:
        try:
            return await self.primary.current(region, now)
        except ProviderError as exc:
            return _fallback(await self.fallback.current(region, now), f"{self.name}: {exc}")

    def current_nowait(self, region: str, now: datetime) -> IntensityPoint:
        try:
            return self.primary.current_nowait(region, now)
        except ProviderError as exc:
            return _fallback(self.fallback.current_nowait(region, now), f"{self.name}: {exc}")

    async def history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        try:
            return await self.primary.history(region, start, end)
        except ProviderError as exc:
            return [_fallback(p, f"{self.name}: {exc}") for p in await self.fallback.history(region, start, end)]

    async def forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        try:
            return await self.primary.forecast(region, now, horizon)
        except ProviderError as exc:
            return [_fallback(p, f"{self.name}: {exc}") for p in await self.fallback.forecast(region, now, horizon)]


class LiveSource(Protocol):
    name: str
    signal: Signal

    def regions(self) -> Sequence[str]: ...

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint: ...

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]: ...

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    value: Any
    at: float


@dataclass(slots=True)
class _Health:
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


class CachedProvider:
    """A live source behind a cache: stale-while-revalidate, coalesced fetches, backoff, fallback.

    ``current``: a value younger than ``ttl_s`` is served as is; an older one (up to
    ``max_stale_s``) is served while one background task refreshes it; with nothing usable the
    caller waits for the fetch up to ``first_fetch_timeout_s`` (the fetch keeps running and fills
    the cache), then gets ``static`` with ``fallback_reason``. After a failure the source is not
    asked again for that key before ``backoff_base_s · 2^(n−1)`` (capped at ``backoff_max_s``).
    """

    def __init__(
        self,
        source: LiveSource,
        fallback: StaticProvider,
        *,
        ttl_s: float = 300.0,
        max_stale_s: float = 3600.0,
        first_fetch_timeout_s: float = 3.0,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 600.0,
        max_entries: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.fallback = fallback
        self.name = source.name
        self.signal = source.signal
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self.first_fetch_timeout_s = first_fetch_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_entries = max_entries
        self._now = monotonic
        self._cache: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._health: dict[tuple[Any, ...], _Health] = {}
        self.fetches = 0
        """Number of calls made to the source (for tests and metrics)."""
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that runs background refreshes asked for from other threads."""
        self._loop = loop

    def regions(self) -> Sequence[str]:
        return self.source.regions()

    # -- cache machinery

    def _get(self, key: tuple[Any, ...]) -> _Entry | None:
        e = self._cache.get(key)
        if e is not None:
            self._cache.move_to_end(key)
        return e

    def _put(self, key: tuple[Any, ...], value: Any) -> None:
        self._cache[key] = _Entry(value, self._now())
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def _backing_off(self, key: tuple[Any, ...]) -> str | None:
        h = self._health.get(key)
        if h is not None and h.failures and self._now() < h.retry_at:
            return h.last_error
        return None

    def _fetch(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        task = self._inflight.get(key)
        if task is not None:
            return task

        async def run() -> Any:
            self.fetches += 1
            try:
                value = await make()
            except Exception as exc:
                h = self._health.setdefault(key, _Health())
                h.failures += 1
                h.retry_at = self._now() + min(self.backoff_max_s, self.backoff_base_s * 2 ** (h.failures - 1))
                h.last_error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ProviderError) else str(exc)
                raise
            else:
                self._health.pop(key, None)
                self._put(key, value)
                return value
            finally:
                self._inflight.pop(key, None)

        loop = asyncio.get_running_loop()
        self._loop = self._loop or loop
        task = loop.create_task(run())
        task.add_done_callback(_consume_exception)
        self._inflight[key] = task
        return task

    def _kick(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> None:
        """Start a background fetch from any thread (no-op while backing off or in flight)."""
        if key in self._inflight or self._backing_off(key) is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(lambda: None if key in self._inflight else self._fetch(key, make))
            return
        self._fetch(key, make)

    async def _cached(
        self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]], *, swr: bool
    ) -> tuple[Any | None, str | None]:
        """(value, None) or (None, reason-for-fallback)."""
        e = self._get(key)
        age = math.inf if e is None else self._now() - e.at
        if e is not None and age < self.ttl_s:
            return e.value, None
        if e is not None and swr and age < self.max_stale_s:
            self._kick(key, make)  # revalidate in the background
            return e.value, None
        err = self._backing_off(key)
        if err is not None:
            return None, f"{self.name} unavailable (backing off): {err}"
        task = self._fetch(key, make)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.first_fetch_timeout_s), None
        except TimeoutError:
            return None, f"{self.name} did not answer within {self.first_fetch_timeout_s:g} s"
        except RegionNotCovered as exc:
            return None, f"{self.name}: {exc}"
        except Exception as exc:
            return None, f"{self.name} unavailable: {exc}"

    async def refresh(self, regions: Iterable[str], now: datetime) -> None:
        """Fetch ``current`` for ``regions`` now (e.g. from a background loop)."""
        tasks = [self._fetch(("current", region_key(r)), self._current_maker(r, now)) for r in regions]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _current_maker(self, region: str, now: datetime) -> Callable[[], Awaitable[IntensityPoint]]:
        return lambda: self.source.fetch_current(region, now)

    # -- provider interface

    async def current(self, region: str, now: datetime) -> IntensityPoint:
        value, reason = await self._cached(("current", region_key(region)), self._current_maker(region, now), swr=True)
        if value is not None:
            point: IntensityPoint = value
            return point if point.region == region else dataclasses.replace(point, region=region)
        return _fallback(await self.fallback.current(region, now), reason or self.name)

    def current_nowait(self, region: str, now: datetime) -> IntensityPoint:
        key = ("current", region_key(region))
        make = self._current_maker(region, now)
        e = self._get(key)
        age = math.inf if e is None else self._now() - e.at
        if e is not None and age < self.max_stale_s:
            if age >= self.ttl_s:
                self._kick(key, make)
            point: IntensityPoint = e.value
            return point if point.region == region else dataclasses.replace(point, region=region)
        self._kick(key, make)
        reason = self._backing_off(key)
        why = f"{self.name} unavailable (backing off): {reason}" if reason else f"{self.name}: no data fetched yet"
        return _fallback(self.fallback.current_nowait(region, now), why)

    async def history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        # Buckets of 5 minutes make repeated "last 24 h" queries hit the cache.
        key = ("history", region_key(region), int(utc(start).timestamp() // 300), int(utc(end).timestamp() // 300))
        value, reason = await self._cached(key, lambda: self.source.fetch_history(region, start, end), swr=False)
        if value is not None:
            points: list[IntensityPoint] = value
            return points
        return [_fallback(p, reason or self.name) for p in await self.fallback.history(region, start, end)]

    async def forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        key = ("forecast", region_key(region), int(utc(now).timestamp() // 300), int(horizon.total_seconds()))
        value, reason = await self._cached(key, lambda: self.source.fetch_forecast(region, now, horizon), swr=True)
        if value is not None:
            points: list[IntensityPoint] = value
            return points
        return [_fallback(p, reason or self.name) for p in await self.fallback.forecast(region, now, horizon)]

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self.source.aclose()


def _consume_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed background refresh is logged, not raised
        if task.exception() is not None:
            log.debug("grid refresh failed: %s", task.exception())


# --------------------------------------------------------------------------------------------
# live sources
# --------------------------------------------------------------------------------------------


def _grid_target(region: str, locations: LocationIndex) -> tuple[str, Location | None]:
    """The grid region whose data describe ``region`` (a cloud region uses its grid's)."""
    loc = locations.resolve(region)
    if loc is not None and loc.kind == "cloud" and loc.grid_region:
        return loc.grid_region, loc
    return (loc.code if loc is not None else region), loc


async def _http_json(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
    try:
        resp = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if resp.status_code >= 400:
        raise ProviderUnavailable(f"HTTP {resp.status_code} from {resp.request.url.host}{resp.request.url.path}")
    try:
        return resp.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"invalid JSON from {resp.request.url.path}") from exc


MixRows = list[tuple[datetime, dict[str, float]]]
MixFetcher = Callable[[str, "str | tuple[datetime, datetime]"], Awaitable[MixRows]]


def frame_records_to_rows(records: Sequence[Mapping[str, Any]], respondent: str | None = None) -> MixRows:
    """gridstatus fuel-mix records (``DataFrame.to_dict("records")``) → (time, {fuel: MW}) rows."""
    rows: MixRows = []
    for rec in records:
        if respondent is not None and str(rec.get("Respondent", respondent)) != respondent:
            continue
        raw_t = rec.get("Interval Start", rec.get("Time"))
        if raw_t is None:
            continue
        ts = utc(raw_t) if isinstance(raw_t, datetime) else parse_time(str(raw_t))
        mix: dict[str, float] = {}
        for k, v in rec.items():
            if k in ("Interval Start", "Interval End", "Time", "Respondent", "Respondent Name"):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                mix[k] = float(v)
        rows.append((ts, mix))
    rows.sort(key=lambda r: r[0])
    return rows


def gridstatus_fetcher(eia_api_key: str | None = None, pjm_api_key: str | None = None) -> MixFetcher:
    """Fetch fuel mixes with the optional ``gridstatus`` package (``pip install gridstatus``).

    ISO classes: ``get_fuel_mix("latest")`` or ``get_fuel_mix(start=, end=)``; ``EIA:<BA>`` targets
    use ``EIA.get_dataset("electricity/rto/fuel-type-data", ...)`` filtered to the balancing
    authority. Runs the blocking client in a worker thread.
    """

    async def fetch(target: str, when: str | tuple[datetime, datetime]) -> MixRows:
        def run() -> MixRows:
            try:
                import gridstatus  # type: ignore[import-not-found,unused-ignore]
            except ImportError as exc:  # pragma: no cover - depends on the optional extra
                raise ProviderUnavailable("the gridstatus package is not installed (pip install gridstatus)") from exc
            if target.startswith("EIA:"):
                if not eia_api_key:
                    raise ProviderUnavailable("EIA data need POWERMETER_EIA_API_KEY")
                ba = target.split(":", 1)[1]
                if isinstance(when, tuple):
                    start, end = when
                else:
                    end = datetime.now(UTC)
                    start = end - timedelta(hours=6)
                df = gridstatus.EIA(api_key=eia_api_key).get_dataset(
                    "electricity/rto/fuel-type-data", start=start, end=end
                )
                return frame_records_to_rows(df.to_dict("records"), respondent=ba)
            cls = getattr(gridstatus, target)
            iso = cls(api_key=pjm_api_key) if target == "PJM" else cls()
            kwargs = {"date": when[0], "end": when[1]} if isinstance(when, tuple) else {"date": "latest"}
            df = iso.get_fuel_mix(**kwargs)
            return frame_records_to_rows(df.to_dict("records"))

        return await asyncio.to_thread(run)

    return fetch


class GridstatusSource:
    """Live ISO fuel mix (via gridstatus) converted to intensity with the pinned factor set."""

    name = "gridstatus"
    signal: Signal = "average"

    def __init__(
        self,
        fetch: MixFetcher | None = None,
        *,
        factor_set: str = "lifecycle",
        eia_api_key: str | None = None,
        pjm_api_key: str | None = None,
        grid: GridData | None = None,
        locations: LocationIndex | None = None,
    ) -> None:
        self.grid = grid or load_grid_data()
        self.locations = locations or load_locations()
        self.factors = self.grid.factor_sets[factor_set]
        self._factor_values = self.factors.values()
        self.eia_api_key = eia_api_key
        self.pjm_api_key = pjm_api_key
        self._injected = fetch is not None
        self._fetch = fetch or gridstatus_fetcher(eia_api_key, pjm_api_key)

    def _target(self, region: str) -> tuple[str, str]:
        grid_region, _ = _grid_target(region, self.locations)
        ids = self.grid.ids(grid_region)
        if ids is None:
            raise RegionNotCovered(f"gridstatus has no data for {region!r}")
        # PJM's API and EIA need keys when gridstatus itself does the fetching.
        if ids.gridstatus_iso and (ids.gridstatus_iso != "PJM" or self.pjm_api_key or self._injected):
            return grid_region, ids.gridstatus_iso
        if ids.eia_ba and (self.eia_api_key or self._injected):
            return grid_region, f"EIA:{ids.eia_ba}"
        raise RegionNotCovered(f"gridstatus needs an API key for {grid_region} (PJM_API_KEY or EIA_API_KEY)")

    def regions(self) -> Sequence[str]:
        out = []
        for ids in self.grid.provider_ids.values():
            iso_ok = ids.gridstatus_iso is not None and (ids.gridstatus_iso != "PJM" or bool(self.pjm_api_key))
            if iso_ok or (ids.eia_ba and self.eia_api_key):
                out.append(ids.region)
        return out

    def _points(self, region: str, target: str, rows: MixRows) -> list[IntensityPoint]:
        if not rows:
            raise ProviderUnavailable(f"gridstatus returned no fuel mix for {target}")
        starts = [t.timestamp() for t, _ in rows]
        gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
        # One row: CAISO/ERCOT/MISO/NYISO/SPP publish 5-minute mixes, PJM and EIA hourly ones.
        step = min(gaps) if gaps else (3600.0 if target.startswith("EIA:") or target == "PJM" else 300.0)
        out = []
        for t, mix in rows:
            try:
                r = intensity_from_fuel_mix(mix, self._factor_values, self.grid.fuel_aliases)
            except ValueError:
                continue
            detail = f"{target} fuel mix × {self.factors.name} factors (grid data {self.grid.version})"
            if r.unmapped:
                detail += f"; unmapped columns counted as unknown: {', '.join(r.unmapped)}"
            out.append(
                IntensityPoint(region, t, timedelta(seconds=step), r.intensity_g_per_kwh, "average", self.name, detail)
            )
        if not out:
            raise ProviderUnavailable(f"no usable fuel-mix rows for {target}")
        return out

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint:
        _, target = self._target(region)
        return self._points(region, target, await self._fetch(target, "latest"))[-1]

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        _, target = self._target(region)
        return self._points(region, target, await self._fetch(target, (utc(start), utc(end))))

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        """ISOs publish no intensity forecast: seasonal-naive from the last 24 h of fuel mix."""
        hist = await self.fetch_history(region, utc(now) - timedelta(days=1), utc(now))
        s = Series.from_points([(p.timestamp, p.intensity_g_per_kwh) for p in hist])
        now_s = utc(now).timestamp()
        steps = max(1, math.ceil(horizon.total_seconds() / s.step_s))
        first = s.starts_s[-1] + s.step_s if s.end_s <= now_s else now_s
        detail = hist[-1].detail + "; seasonal-naive forecast (same time yesterday)"
        return [
            IntensityPoint(
                region,
                datetime.fromtimestamp(t, UTC),
                timedelta(seconds=s.step_s),
                v,
                "average",
                self.name,
                detail,
                is_forecast=True,
                is_estimated=True,
            )
            for t, v in seasonal_naive_forecast(s, first, steps)
        ]

    async def aclose(self) -> None:
        return None


class WattTimeSource:
    """WattTime v3: ``/login`` (Basic) → bearer token (30 min); ``/v3/forecast`` with
    ``horizon_hours=0`` for now, ``/v3/historical``, ``/v3/forecast``; ``/v3/region-from-loc`` for
    regions without a known WattTime id. Values in lb/MWh are converted to g/kWh."""

    name = "watttime"
    TOKEN_LIFETIME_S = 25 * 60  # WattTime tokens last 30 min; renew early

    def __init__(
        self,
        username: str,
        password: str,
        *,
        signal_type: Literal["co2_moer", "co2_aoer"] = "co2_moer",
        base_url: str = "https://api.watttime.org",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
        grid: GridData | None = None,
        locations: LocationIndex | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.signal_type = signal_type
        self.signal: Signal = "marginal" if signal_type == "co2_moer" else "average"
        self.grid = grid or load_grid_data()
        self.locations = locations or load_locations()
        self.client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout_s, trust_env=False)
        self._token: str | None = None
        self._token_at = -math.inf
        self._region_ids: dict[str, str] = {}
        self._login_lock = asyncio.Lock()

    def regions(self) -> Sequence[str]:
        return [ids.region for ids in self.grid.provider_ids.values()]

    async def _login(self, force: bool = False) -> str:
        async with self._login_lock:
            if not force and self._token and time.monotonic() - self._token_at < self.TOKEN_LIFETIME_S:
                return self._token
            data = await _http_json(self.client, "GET", "/login", auth=(self.username, self.password))
            token = data.get("token") if isinstance(data, dict) else None
            if not token:
                raise ProviderUnavailable("WattTime login returned no token")
            self._token, self._token_at = str(token), time.monotonic()
            return self._token

    async def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        token = await self._login()
        for attempt in range(2):
            try:
                resp = await self.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code in (401, 403) and attempt == 0:
                token = await self._login(force=True)
                continue
            if resp.status_code >= 400:
                raise ProviderUnavailable(f"HTTP {resp.status_code} from WattTime {path}")
            try:
                return resp.json()
            except ValueError as exc:
                raise ProviderUnavailable(f"invalid JSON from WattTime {path}") from exc
        raise ProviderUnavailable("WattTime refused the credentials")  # pragma: no cover

    async def _region_id(self, region: str) -> str:
        grid_region, _ = _grid_target(region, self.locations)
        ids = self.grid.ids(grid_region)
        if ids is not None and ids.watttime_region:
            return ids.watttime_region
        key = region_key(grid_region)
        if key in self._region_ids:
            return self._region_ids[key]
        site = self.grid.site(grid_region) or self.grid.site(region)
        if site is None:
            raise RegionNotCovered(f"no WattTime region or site coordinates for {region!r}")
        data = await self._get(
            "/v3/region-from-loc",
            {"latitude": site.latitude, "longitude": site.longitude, "signal_type": self.signal_type},
        )
        wt = data.get("region") if isinstance(data, dict) else None
        if not wt:
            raise RegionNotCovered(f"WattTime has no region at {site.site}")
        self._region_ids[key] = str(wt)
        return str(wt)

    def _points(self, region: str, wt_region: str, data: Any, *, forecast: bool) -> list[IntensityPoint]:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ProviderUnavailable("unexpected WattTime response shape")
        meta = data.get("meta") or {}
        period = float(meta.get("data_point_period_seconds") or 300)
        units = str(meta.get("units") or "lbs_co2_per_mwh")
        if "lb" not in units:
            raise ProviderUnavailable(f"unexpected WattTime units {units!r}")
        detail = f"WattTime {self.signal_type} {wt_region}" + (
            f" (model {meta['model'].get('date')})" if isinstance(meta.get("model"), dict) else ""
        )
        return [
            IntensityPoint(
                region,
                parse_time(str(p["point_time"])),
                timedelta(seconds=period),
                lb_per_mwh_to_g_per_kwh(float(p["value"])),
                self.signal,
                self.name,
                detail,
                is_forecast=forecast,
            )
            for p in data["data"]
        ]

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint:
        wt = await self._region_id(region)
        data = await self._get("/v3/forecast", {"region": wt, "signal_type": self.signal_type, "horizon_hours": 0})
        points = self._points(region, wt, data, forecast=False)
        if not points:
            raise ProviderUnavailable(f"WattTime returned no data for {wt}")
        return points[0]

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        wt = await self._region_id(region)
        data = await self._get(
            "/v3/historical",
            {
                "region": wt,
                "signal_type": self.signal_type,
                "start": utc(start).isoformat(),
                "end": utc(end).isoformat(),
            },
        )
        return self._points(region, wt, data, forecast=False)

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        wt = await self._region_id(region)
        hours = max(1, min(72, math.ceil(horizon.total_seconds() / 3600)))
        data = await self._get("/v3/forecast", {"region": wt, "signal_type": self.signal_type, "horizon_hours": hours})
        return self._points(region, wt, data, forecast=True)

    async def aclose(self) -> None:
        await self.client.aclose()


class ElectricityMapsSource:
    """Electricity Maps: ``carbon-intensity/latest``, ``/past-range``, ``/forecast`` (header
    ``auth-token``). Average, flow-traced, consumption-based; ``lifecycle`` factors by default.
    Cloud regions without a grid mapping are asked with ``dataCenterProvider``/``dataCenterRegion``."""

    name = "electricitymaps"
    signal: Signal = "average"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.electricitymaps.com/v3",
        emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
        grid: GridData | None = None,
        locations: LocationIndex | None = None,
    ) -> None:
        self.grid = grid or load_grid_data()
        self.locations = locations or load_locations()
        self.emission_factor_type = emission_factor_type
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=timeout_s,
            headers={"auth-token": token},
            trust_env=False,
        )

    def regions(self) -> Sequence[str]:
        return [loc.code for loc in self.locations.all() if loc.kind in ("grid", "country", "cloud")]

    def _zone_params(self, region: str) -> dict[str, str]:
        grid_region, loc = _grid_target(region, self.locations)
        ids = self.grid.ids(grid_region)
        if ids is not None and ids.electricitymaps_zone:
            return {"zone": ids.electricitymaps_zone}
        if loc is not None and loc.kind == "cloud" and loc.provider:
            return {"dataCenterProvider": loc.provider, "dataCenterRegion": loc.code.split(":", 1)[1]}
        if loc is not None and loc.kind == "country":
            return {"zone": loc.code}
        if loc is not None and loc.aliases:
            return {"zone": loc.aliases[0]}
        raise RegionNotCovered(f"no Electricity Maps zone for {region!r}")

    def _point(
        self, region: str, rec: Mapping[str, Any], zone: str, *, forecast: bool, step_s: float
    ) -> IntensityPoint:
        return IntensityPoint(
            region,
            parse_time(str(rec["datetime"])),
            timedelta(seconds=step_s),
            float(rec["carbonIntensity"]),
            "average",
            self.name,
            f"Electricity Maps {zone} ({rec.get('emissionFactorType', self.emission_factor_type)})",
            is_forecast=forecast,
            is_estimated=bool(rec.get("isEstimated", False)),
        )

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint:
        params = self._zone_params(region) | {"emissionFactorType": self.emission_factor_type}
        data = await _http_json(self.client, "GET", "carbon-intensity/latest", params=params)
        if not isinstance(data, dict) or data.get("carbonIntensity") is None:
            raise ProviderUnavailable("Electricity Maps returned no carbonIntensity")
        zone = str(data.get("zone") or params.get("zone") or params.get("dataCenterRegion"))
        step = {"5_minutes": 300.0, "15_minutes": 900.0}.get(str(data.get("temporalGranularity")), 3600.0)
        return self._point(region, data, zone, forecast=False, step_s=step)

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        params = self._zone_params(region) | {
            "emissionFactorType": self.emission_factor_type,
            "start": utc(start).isoformat().replace("+00:00", "Z"),
            "end": utc(end).isoformat().replace("+00:00", "Z"),
        }
        data = await _http_json(self.client, "GET", "carbon-intensity/past-range", params=params)
        recs = data.get("data") if isinstance(data, dict) else None
        if not isinstance(recs, list):
            raise ProviderUnavailable("unexpected Electricity Maps past-range shape")
        zone = str(data.get("zone") or params.get("zone"))
        return [
            self._point(region, r, zone, forecast=False, step_s=3600.0)
            for r in recs
            if r.get("carbonIntensity") is not None
        ]

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        hours = max(1, min(72, math.ceil(horizon.total_seconds() / 3600)))
        params = self._zone_params(region) | {"horizonHours": str(hours)}
        data = await _http_json(self.client, "GET", "carbon-intensity/forecast", params=params)
        recs = data.get("forecast") if isinstance(data, dict) else None
        if not isinstance(recs, list):
            raise ProviderUnavailable("unexpected Electricity Maps forecast shape")
        zone = str(data.get("zone") or params.get("zone"))
        return [
            self._point(region, r, zone, forecast=True, step_s=3600.0)
            for r in recs
            if r.get("carbonIntensity") is not None
        ]

    async def aclose(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    kind: str = "static"
    csv_path: Path | None = None
    watttime_username: str | None = None
    watttime_password: str | None = None
    watttime_signal: Literal["co2_moer", "co2_aoer"] = "co2_moer"
    electricitymaps_token: str | None = None
    eia_api_key: str | None = None
    pjm_api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ProviderConfig:
        """Read the ``POWERMETER_GRID_*`` / provider credential settings (missing ones = None)."""
        csv_path = getattr(settings, "grid_csv_path", None)
        return cls(
            kind=str(getattr(settings, "grid_provider", "static") or "static").lower(),
            csv_path=Path(csv_path) if csv_path else None,
            watttime_username=getattr(settings, "watttime_username", None),
            watttime_password=getattr(settings, "watttime_password", None),
            electricitymaps_token=getattr(settings, "electricitymaps_token", None),
            eia_api_key=getattr(settings, "eia_api_key", None),
            pjm_api_key=getattr(settings, "pjm_api_key", None) or os.environ.get("PJM_API_KEY"),
        )


def build_provider(
    config: ProviderConfig,
    *,
    locations: LocationIndex | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    mix_fetcher: MixFetcher | None = None,
) -> IntensityProvider:
    """The provider a setting asks for; anything live is wrapped in cache + ``static`` fallback."""
    static = StaticProvider(locations)
    kind = config.kind
    if kind == "static":
        return static
    if kind == "csv":
        if config.csv_path is None:
            raise ValueError("grid provider 'csv' needs a CSV path (POWERMETER_GRID_CSV_PATH)")
        return WithFallback(CsvProvider(config.csv_path, locations=static.locations), static)
    source: LiveSource
    if kind == "gridstatus":
        source = GridstatusSource(
            mix_fetcher, eia_api_key=config.eia_api_key, pjm_api_key=config.pjm_api_key, locations=static.locations
        )
    elif kind == "watttime":
        if not (config.watttime_username and config.watttime_password):
            raise ValueError("grid provider 'watttime' needs POWERMETER_WATTTIME_USERNAME and _PASSWORD")
        source = WattTimeSource(
            config.watttime_username,
            config.watttime_password,
            signal_type=config.watttime_signal,
            transport=transport,
            locations=static.locations,
        )
    elif kind == "electricitymaps":
        if not config.electricitymaps_token:
            raise ValueError("grid provider 'electricitymaps' needs POWERMETER_ELECTRICITYMAPS_TOKEN")
        source = ElectricityMapsSource(config.electricitymaps_token, transport=transport, locations=static.locations)
    else:
        raise ValueError(f"unknown grid provider {kind!r}; choose one of {', '.join(PROVIDER_NAMES)}")
    return CachedProvider(source, static)


async def close_provider(provider: IntensityProvider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
