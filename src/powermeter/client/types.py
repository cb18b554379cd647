"""Typed shapes of the API's requests and responses (the seed documents' contracts).

``TypedDict``s: the SDK returns the JSON it receives, typed, so nothing is lost when the server
adds a field. ``total=False`` marks optional members.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# ---------------------------------------------------------------------- compute jobs (seed 000)


class _JobRequired(TypedDict):
    job_id: str
    duration_minutes: float


class Job(_JobRequired, total=False):
    cpu_cores: int
    memory_gb: float
    gpu_cores: int
    geo_iso: str


class ReportData(TypedDict, total=False):
    job_id: str
    kwh: float
    co2_grams: float
    receipt_id: str
    replayed: bool  # present (true) when the job_id was reported before with the same inputs


class BatchJobResult(TypedDict, total=False):
    job_id: str
    kwh: float
    receipt_id: str
    replayed: bool


class BatchData(TypedDict, total=False):
    total_jobs: int
    total_kwh: float
    total_co2_grams: float
    jobs: list[BatchJobResult]
    replayed_jobs: int


class Receipt(TypedDict, total=False):
    receipt_id: str
    job_id: str
    kwh: float
    co2_grams: float
    timestamp: str


class ReceiptsData(TypedDict, total=False):
    receipts: list[Receipt]
    total: int
    has_more: bool


class ApiKeyStats(TypedDict, total=False):
    daily_api_calls: int
    daily_limit: int | None
    remaining_calls: int | None
    daily_usage_kwh: float
    active_keys: int


# ---------------------------------------------------------------------- audit (seed 000)

AuditAction = Literal["VIEW", "EDIT", "DOWNLOAD"]


class AuditLog(TypedDict, total=False):
    id: str
    action_type: str
    receipt_id: str | None
    timestamp: str
    signature: str
    verified: bool


class AuditLogsData(TypedDict, total=False):
    logs: list[AuditLog]
    total: int


# ---------------------------------------------------------------------- AI inference (seed 004)


class InferenceAudit(TypedDict, total=False):
    calculationMethod: str
    finalRegion: str
    finalProvider: str


class InferenceResult(TypedDict, total=False):
    energy_wh: float
    co2_grams: float
    water_ml: float
    tree_days: float
    audit: InferenceAudit
    message: str


class InferenceLog(TypedDict, total=False):
    id: str
    logDate: str
    keyName: str
    maskedKey: str
    provider: str
    model: str
    inputTokens: int
    outputTokens: int
    energyWh: float
    co2Grams: float


class Pagination(TypedDict, total=False):
    totalElements: int
    totalPages: int
    currentPage: int
    limit: int


class InferenceHistory(TypedDict, total=False):
    status: str
    data: list[InferenceLog]
    pagination: Pagination


# ---------------------------------------------------------------------- routing (seed 002)


class RouteAlternative(TypedDict):
    region: str
    co2_g_per_kwh: int  # whole g/kWh, as in seed 002
    co2_g_per_kwh_precise: float


class RouteResult(TypedDict):
    chosen_region: str
    co2_g_per_kwh: int  # whole g/kWh, the number total_emissions_g uses
    co2_g_per_kwh_precise: float
    total_emissions_g: float
    alternatives: list[RouteAlternative]
    provider: str
    signal_type: Literal["average", "marginal"]
    data_timestamp: str


class GridIntensityPoint(TypedDict, total=False):
    region: str
    intensity_g_per_kwh: float
    signal_type: str
    provider: str
    timestamp: str
    duration_s: float
    is_forecast: bool
    is_estimated: bool
    detail: str
    fallback_reason: str | None


class GridIntensity(TypedDict, total=False):
    current: GridIntensityPoint
    history: list[GridIntensityPoint]
    forecast: list[GridIntensityPoint]


class GridRegion(TypedDict, total=False):
    code: str
    name: str
    kind: str
    country: str | None
    grid_region: str | None
    cloud_provider: str | None
    annual_intensity_g_per_kwh: float
    annual_year: int
    annual_source: str
    site: dict[str, Any] | None
    available_on_plan: bool


class GridRegions(TypedDict, total=False):
    regions: list[GridRegion]
    total: int
    provider: str
    signal_type: str
    dataset_version: str


class EmissionsData(TypedDict):
    """Carbon Aware SDK ``EmissionsData`` (``duration`` is a TimeSpan string)."""

    location: str
    time: str
    rating: float
    duration: str


class EmissionsDataPoint(TypedDict):
    location: str
    timestamp: str
    duration: int
    value: float


class EmissionsForecast(TypedDict):
    generatedAt: str
    requestedAt: str
    location: str
    dataStartAt: str
    dataEndAt: str
    windowSize: int
    optimalDataPoints: list[EmissionsDataPoint]
    forecastData: list[EmissionsDataPoint]


# ---------------------------------------------------------------------- cost calculator (seed 003)


class TouTier(TypedDict, total=False):
    name: str
    start_hour: float
    end_hour: float
    rate: float


class RateConfig(TypedDict, total=False):
    flat_rate: float
    currency: str
    tou_tiers: list[TouTier]


class PowerState(TypedDict, total=False):
    name: str
    watts: float
    hours_per_day: float
    schedule: list[list[float]]


class DeviceUsage(TypedDict, total=False):
    watts: float
    hours_per_day: float
    schedule: list[list[float]]
    shiftable: bool
    kwh_per_use: float
    uses_per_week: float
    power_states: list[PowerState]


class CostResult(TypedDict, total=False):
    daily_cost: float
    monthly_cost: float
    annual_cost: float
    kwh_per_day: float
    currency: str
    mode: Literal["flat", "tou", "annual_kwh", "power_states"]
    tou_note: str


class ShiftSavings(TypedDict, total=False):
    current_cost: float
    optimal_cost: float
    optimal_window: Any
    annual_savings: float
    currency: str
    message: str
    savings: float


# ---------------------------------------------------------------------- devices (seed 001)


class Device(TypedDict, total=False):
    id: str
    name: str
    catalog_device_slug: str | None
    watts: float
    hours_per_day: float
    schedule: list[list[float]]
    shiftable: bool
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Profile(TypedDict, total=False):
    region_code: str | None
    rate_config: dict[str, Any] | None
    created_at: str
