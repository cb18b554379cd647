"""Request and response shapes of the routing API (seed 002) and its Carbon Aware SDK subset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RouteIn(BaseModel):
    """``POST /route`` body: the seed's two fields plus optional routing controls."""

    model_config = ConfigDict(extra="forbid")

    source_region: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Where the request comes from: a grid region (CAISO), a cloud region "
        "(us-west1, aws:us-west-1, azure:westus) or a country code.",
        examples=["us-west1"],
    )
    payload_size: float = Field(
        ...,
        ge=0,
        le=1e9,
        description="Size of the request's payload, in `payload_unit` (MB by default).",
        examples=[128],
    )
    payload_unit: Literal["B", "KB", "MB", "GB"] = Field(
        "MB", description="Unit of `payload_size` (decimal: 1 MB = 10^6 bytes)."
    )
    candidates: list[str] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Regions to choose from (grid or cloud regions). Default: the regions of your plan "
        "(dev: CAISO; core and scale: CAISO, BPA, ERCOT, PJM, MISO, NYISO, ISONE, SPP).",
        examples=[["CAISO", "BPA", "PJM"]],
    )
    max_latency_ms: float | None = Field(
        None,
        gt=0,
        le=10_000,
        description="Exclude candidates whose modelled round-trip time from `source_region` exceeds this.",
    )
    carbon_weight: float = Field(
        1.0,
        ge=0,
        le=1,
        description="1 = the cleanest region wins; lower values trade carbon for latency (0 = the nearest wins).",
    )


class Alternative(BaseModel):
    region: str
    co2_g_per_kwh: int = Field(..., description="Grid carbon intensity, whole g/kWh (as in seed 002).")
    co2_g_per_kwh_precise: float = Field(..., description="The same intensity before rounding.")


class RouteOut(BaseModel):
    chosen_region: str = Field(..., examples=["CAISO"])
    co2_g_per_kwh: int = Field(
        ...,
        description="Grid carbon intensity of the chosen region, whole g/kWh (seed 002); total_emissions_g uses "
        "exactly this number.",
        examples=[92],
    )
    co2_g_per_kwh_precise: float = Field(..., description="The same intensity before rounding.", examples=[92.4])
    total_emissions_g: float = Field(
        ...,
        description="Emissions of serving the payload in the chosen region (energy model: docs/methodology.md).",
        examples=[11.78],
    )
    alternatives: list[Alternative] = Field(..., description="Every eligible candidate, chosen first, then by score.")
    provider: str = Field(..., description="Grid data provider: static, csv, gridstatus, watttime, electricitymaps.")
    signal_type: Literal["average", "marginal"]
    data_timestamp: str = Field(..., description="Start of the interval the intensity describes (UTC).")


# ------------------------------------------------------------------------------ /v1/grid


class Site(BaseModel):
    name: str
    latitude: float
    longitude: float


class GridRegion(BaseModel):
    code: str
    name: str
    kind: str
    country: str | None
    grid_region: str | None
    cloud_provider: str | None
    annual_intensity_g_per_kwh: float
    annual_year: int
    annual_source: str
    site: Site | None
    available_on_plan: bool


class GridRegionsData(BaseModel):
    regions: list[GridRegion]
    total: int
    provider: str
    signal_type: str
    dataset_version: str


class GridRegionsOut(BaseModel):
    status: Literal["success"] = "success"
    data: GridRegionsData


class IntensityOut(BaseModel):
    region: str
    intensity_g_per_kwh: float
    signal_type: Literal["average", "marginal"]
    provider: str
    timestamp: str
    duration_s: float
    is_forecast: bool
    is_estimated: bool
    detail: str
    fallback_reason: str | None


class GridIntensityData(BaseModel):
    current: IntensityOut
    history: list[IntensityOut] | None = None
    forecast: list[IntensityOut] | None = None


class GridIntensityOut(BaseModel):
    status: Literal["success"] = "success"
    data: GridIntensityData


# ------------------------------------------------------------------------------ Carbon Aware SDK


class EmissionsData(BaseModel):
    """CASDK ``EmissionsData``: ``duration`` is a .NET TimeSpan string (``00:05:00``)."""

    location: str
    time: str
    rating: float
    duration: str


class EmissionsDataDTO(BaseModel):
    """CASDK ``EmissionsDataDTO`` (forecast points): ``duration`` in whole minutes."""

    location: str
    timestamp: str
    duration: int
    value: float


class EmissionsForecastDTO(BaseModel):
    """CASDK ``EmissionsForecastDTO`` (camelCase names as the SDK serialises them)."""

    generatedAt: str
    requestedAt: str
    location: str
    dataStartAt: str
    dataEndAt: str
    windowSize: int
    optimalDataPoints: list[EmissionsDataDTO]
    forecastData: list[EmissionsDataDTO]


class CarbonIntensityDTO(BaseModel):
    location: str
    startTime: str
    endTime: str
    carbonIntensity: float


class CasdkLocation(BaseModel):
    Latitude: float
    Longitude: float
    Name: str
