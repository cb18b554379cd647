"""``electricitymaps``: Electricity Maps ``carbon-intensity/latest|past-range|forecast``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from powermeter.data.grid import GridData, load_grid_data
from powermeter.data.locations import LocationIndex, load_locations
from powermeter.routing.providers.base import (
    IntensityPoint,
    ProviderUnavailable,
    RegionNotCovered,
    Signal,
    grid_target,
    http_json,
    parse_time,
    utc,
)


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
        grid_region, loc = grid_target(region, self.locations)
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
        data = await http_json(self.client, "GET", "carbon-intensity/latest", params=params)
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
        data = await http_json(self.client, "GET", "carbon-intensity/past-range", params=params)
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
        data = await http_json(self.client, "GET", "carbon-intensity/forecast", params=params)
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
