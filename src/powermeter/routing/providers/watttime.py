"""``watttime``: the WattTime v3 API, marginal (``co2_moer``) or average (``co2_aoer``)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from powermeter.data.grid import GridData, load_grid_data, region_key
from powermeter.data.locations import LocationIndex, load_locations
from powermeter.methodology.grid import (
    lb_per_mwh_to_g_per_kwh,
)
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
            data = await http_json(self.client, "GET", "/login", auth=(self.username, self.password))
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
        grid_region, _ = grid_target(region, self.locations)
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
