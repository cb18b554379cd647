"""What every grid provider shares: the value type, the provider interface, errors and time helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from powermeter.data.locations import Location, LocationIndex

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


def grid_target(region: str, locations: LocationIndex) -> tuple[str, Location | None]:
    """The grid region whose data describe ``region`` (a cloud region uses its grid's)."""
    loc = locations.resolve(region)
    if loc is not None and loc.kind == "cloud" and loc.grid_region:
        return loc.grid_region, loc
    return (loc.code if loc is not None else region), loc


async def http_json(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
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
