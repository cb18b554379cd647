"""Routing API: ``POST /route`` (seed 002), ``/v1/grid/*``, and a Carbon Aware SDK-compatible subset
(``/emissions/*``, ``/locations``) so that SDK's clients can point here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from powermeter.accounts.deps import Auth, Tx, ip_rate_limit
from powermeter.infra.errors import error_responses
from powermeter.infra.responses import FastJSONResponse
from powermeter.infra.state import app_state
from powermeter.routing import schemas
from powermeter.routing.deps import Routing

router = APIRouter()
CASDK_TAG = "carbon aware sdk"


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@router.post(
    "/route",
    tags=["routing"],
    operation_id="route",
    response_model=schemas.RouteOut,
    responses=error_responses("v1", 400, 401, 403, 422, 429),
    summary="Pick the cleanest grid region for a request",
    description=(
        "Evaluates the carbon intensity of the candidate regions (the plan's regions by default), drops those "
        "outside `max_latency_ms` of `source_region`, and returns the cleanest (or the best carbon/latency "
        "trade-off with `carbon_weight` < 1). A region the account already routes to is kept unless another "
        "is at least 10 % better, so near-ties do not flap. `total_emissions_g` is the payload's data-centre "
        "and network energy (Sustainable Web Design Model v4 per-GB figures) at the grid intensity. "
        "Counts against the plan's monthly route quota (dev 50,000; core 500,000; scale 2,000,000)."
    ),
)
async def route(
    body: schemas.RouteIn, response: Response, svc: Routing, tx: Tx = Auth("routing", hot_rows=True)
) -> FastJSONResponse:
    # in a worker thread on PostgreSQL: a row lock wait (route_choices) must not block the event loop
    result = await tx.run(svc.route, tx.conn, tx.principal, body, tx.now)
    # Returned as a response (not validated again against RouteOut): the body is built to its shape.
    out = FastJSONResponse(result.body, headers=result.headers)
    for k, v in response.headers.items():  # e.g. RateLimit-* set by the auth dependency
        if k not in ("content-length", "content-type"):
            out.headers[k] = v
    return out


@router.get(
    "/v1/grid/regions",
    tags=["routing"],
    operation_id="listGridRegions",
    response_model=schemas.GridRegionsOut,
    responses=error_responses("v1", 400, 401, 403, 429),
    summary="Regions the router knows, with their annual intensity and whether your plan includes them",
)
def grid_regions(
    svc: Routing,
    kind: Literal["country", "subdivision", "aggregate", "grid", "cloud"] | None = Query(
        None, description="Only regions of this kind"
    ),
    tx: Tx = Auth("routing"),
) -> dict[str, Any]:
    return {"status": "success", "data": svc.regions(tx.principal.plan, kind)}


@router.get(
    "/v1/grid/intensity",
    tags=["routing"],
    operation_id="getGridIntensity",
    response_model=schemas.GridIntensityOut,
    responses=error_responses("v1", 400, 401, 403, 429),
    summary="What the router sees for one region: current intensity, and optionally history and forecast",
)
async def grid_intensity(
    svc: Routing,
    region: str = Query(..., min_length=1, max_length=64, examples=["CAISO"]),
    start: datetime | None = Query(None, description="History from (ISO 8601; default 24 h before now)"),
    end: datetime | None = Query(None, description="History until (ISO 8601; default now)"),
    horizon_hours: float | None = Query(None, gt=0, le=72, description="Forecast this many hours ahead"),
    tx: Tx = Auth("routing"),
) -> dict[str, Any]:
    data = await svc.intensity(region, tx.now, _utc(start), _utc(end), horizon_hours)
    return {"status": "success", "data": data}


# ---------------------------------------------------------------------- Carbon Aware SDK subset

_casdk_limit = [Depends(ip_rate_limit)]
_LOCATION = Query(..., min_length=1, description="Named location; repeat the parameter for several")


def _casdk_response(rows: list[dict[str, Any]]) -> Any:
    return rows if rows else Response(status_code=204)


@router.get(
    "/emissions/bylocation",
    tags=[CASDK_TAG],
    operation_id="casdkEmissionsByLocation",
    response_model=list[schemas.EmissionsData],
    responses={204: {"description": "No data"}, **error_responses("v1", 400, 429)},
    dependencies=_casdk_limit,
)
async def emissions_by_location(
    request: Request,
    svc: Routing,
    location: str = Query(..., min_length=1),
    time: datetime | None = Query(None),
    to_time: datetime | None = Query(None, alias="toTime"),
) -> Any:
    st = app_state(request)
    rows = await svc.casdk_emissions([location], st.clock.now(), _utc(time), _utc(to_time))
    return _casdk_response(rows)


@router.get(
    "/emissions/bylocations",
    tags=[CASDK_TAG],
    operation_id="casdkEmissionsByLocations",
    response_model=list[schemas.EmissionsData],
    responses={204: {"description": "No data"}, **error_responses("v1", 400, 429)},
    dependencies=_casdk_limit,
)
async def emissions_by_locations(
    request: Request,
    svc: Routing,
    location: list[str] = _LOCATION,
    time: datetime | None = Query(None),
    to_time: datetime | None = Query(None, alias="toTime"),
) -> Any:
    st = app_state(request)
    rows = await svc.casdk_emissions(location, st.clock.now(), _utc(time), _utc(to_time))
    return _casdk_response(rows)


@router.get(
    "/emissions/bylocations/best",
    tags=[CASDK_TAG],
    operation_id="casdkBestEmissionsByLocations",
    response_model=list[schemas.EmissionsData],
    responses={204: {"description": "No data"}, **error_responses("v1", 400, 429)},
    dependencies=_casdk_limit,
    description="The lowest-rated data point(s) over all the locations and times asked for (ties are kept).",
)
async def best_emissions_by_locations(
    request: Request,
    svc: Routing,
    location: list[str] = _LOCATION,
    time: datetime | None = Query(None),
    to_time: datetime | None = Query(None, alias="toTime"),
) -> Any:
    st = app_state(request)
    rows = await svc.casdk_emissions(location, st.clock.now(), _utc(time), _utc(to_time))
    return _casdk_response(svc.best(rows))


@router.get(
    "/emissions/forecasts/current",
    tags=[CASDK_TAG],
    operation_id="casdkCurrentForecast",
    response_model=list[schemas.EmissionsForecastDTO],
    responses=error_responses("v1", 400, 429),
    dependencies=_casdk_limit,
    description=(
        "The current forecast per location, averaged over `windowSize` minutes (a rolling, time-weighted "
        "mean) with the optimal window(s)."
    ),
)
async def current_forecast(
    request: Request,
    svc: Routing,
    location: list[str] = _LOCATION,
    data_start_at: datetime | None = Query(None, alias="dataStartAt"),
    data_end_at: datetime | None = Query(None, alias="dataEndAt"),
    window_size: int | None = Query(None, alias="windowSize", ge=0, le=7 * 24 * 60),
) -> list[dict[str, Any]]:
    st = app_state(request)
    return await svc.casdk_forecasts(location, st.clock.now(), _utc(data_start_at), _utc(data_end_at), window_size)


@router.get(
    "/emissions/average-carbon-intensity",
    tags=[CASDK_TAG],
    operation_id="casdkAverageCarbonIntensity",
    response_model=schemas.CarbonIntensityDTO,
    responses=error_responses("v1", 400, 429),
    dependencies=_casdk_limit,
)
async def average_carbon_intensity(
    request: Request,
    svc: Routing,
    location: str = Query(..., min_length=1),
    start_time: datetime = Query(..., alias="startTime"),
    end_time: datetime = Query(..., alias="endTime"),
) -> dict[str, Any]:
    start = start_time.replace(tzinfo=UTC) if start_time.tzinfo is None else start_time.astimezone(UTC)
    end = end_time.replace(tzinfo=UTC) if end_time.tzinfo is None else end_time.astimezone(UTC)
    return await svc.casdk_average(location, start, end)


@router.get(
    "/locations",
    tags=[CASDK_TAG],
    operation_id="casdkLocations",
    response_model=dict[str, schemas.CasdkLocation],
    responses=error_responses("v1", 429),
    dependencies=_casdk_limit,
    description="Named locations with coordinates (grid regions' representative sites and cloud regions).",
)
def locations(svc: Routing) -> dict[str, Any]:
    return svc.casdk_locations()
