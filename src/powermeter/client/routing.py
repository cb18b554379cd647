"""Carbon-aware routing (seed 002): ``POST /route``, ``/v1/grid/*`` and the Carbon Aware SDK subset."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from powermeter.client._base import Http
from powermeter.client.types import EmissionsData, EmissionsForecast, GridIntensity, GridRegions, RouteResult


def _iso(dt: datetime | str | None) -> str | None:
    return dt.isoformat() if isinstance(dt, datetime) else dt


class RoutingAPI:
    def __init__(self, http: Http) -> None:
        self._http = http

    def route(
        self,
        source_region: str,
        payload_size: float,
        *,
        candidates: Sequence[str] | None = None,
        max_latency_ms: float | None = None,
        carbon_weight: float | None = None,
        payload_unit: Literal["B", "KB", "MB", "GB"] | None = None,
    ) -> RouteResult:
        """``POST /route``: the cleanest eligible region, its intensity, the request's emissions and the
        alternatives."""
        body: dict[str, Any] = {"source_region": source_region, "payload_size": payload_size}
        for k, v in (
            ("candidates", list(candidates) if candidates is not None else None),
            ("max_latency_ms", max_latency_ms),
            ("carbon_weight", carbon_weight),
            ("payload_unit", payload_unit),
        ):
            if v is not None:
                body[k] = v
        return cast(RouteResult, self._http.json("POST", "/route", json=body))

    def grid_regions(self, kind: str | None = None) -> GridRegions:
        data = self._http.json("GET", "/v1/grid/regions", params={"kind": kind})
        return cast(GridRegions, data["data"])

    def grid_intensity(
        self,
        region: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        horizon_hours: float | None = None,
    ) -> GridIntensity:
        params = {"region": region, "start": _iso(start), "end": _iso(end), "horizon_hours": horizon_hours}
        return cast(GridIntensity, self._http.json("GET", "/v1/grid/intensity", params=params)["data"])

    # Carbon Aware SDK-compatible endpoints (public)

    def _casdk(self, path: str, locations: Sequence[str], extra: dict[str, Any]) -> Any:
        params: list[tuple[str, Any]] = [("location", loc) for loc in locations]
        params += [(k, v) for k, v in extra.items() if v is not None]
        return self._http.json("GET", path, params=params, auth="none")

    def emissions_by_locations(
        self, locations: Sequence[str], *, time: datetime | str | None = None, to_time: datetime | str | None = None
    ) -> list[EmissionsData]:
        out = self._casdk("/emissions/bylocations", locations, {"time": _iso(time), "toTime": _iso(to_time)})
        return cast(list[EmissionsData], out or [])

    def best_emissions(
        self, locations: Sequence[str], *, time: datetime | str | None = None, to_time: datetime | str | None = None
    ) -> list[EmissionsData]:
        out = self._casdk("/emissions/bylocations/best", locations, {"time": _iso(time), "toTime": _iso(to_time)})
        return cast(list[EmissionsData], out or [])

    def current_forecast(
        self,
        locations: Sequence[str],
        *,
        data_start_at: datetime | str | None = None,
        data_end_at: datetime | str | None = None,
        window_size: int | None = None,
    ) -> list[EmissionsForecast]:
        extra = {"dataStartAt": _iso(data_start_at), "dataEndAt": _iso(data_end_at), "windowSize": window_size}
        return cast(list[EmissionsForecast], self._casdk("/emissions/forecasts/current", locations, extra))

    def locations(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self._http.json("GET", "/locations", auth="none"))
