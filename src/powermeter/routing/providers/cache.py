"""The shared wrappers: ``static`` fallback for any provider, and the live-source cache
(TTL, stale-while-revalidate, coalesced refreshes, backoff)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from powermeter.data.grid import region_key
from powermeter.routing.providers.base import (
    IntensityPoint,
    IntensityProvider,
    ProviderError,
    RegionNotCovered,
    Signal,
    utc,
)
from powermeter.routing.providers.static import StaticProvider

log = logging.getLogger(__name__)


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
