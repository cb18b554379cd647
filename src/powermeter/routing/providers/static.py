"""``static``: the annual average per region from the shared locations dataset (offline, always there)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from powermeter.data.locations import Location, LocationIndex, load_locations
from powermeter.routing.providers.base import IntensityPoint, RegionNotCovered, Signal, utc


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
