"""Request and response shapes of the compute-job API (seed 000), with the added detail fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from powermeter.infra.validation import NO_CONTROL_PATTERN
from powermeter.methodology.occurrence import normalise_instant

MAX_BATCH_JOBS = 10_000
MAX_DURATION_MINUTES = 60 * 24 * 366 * 10  # ten years
MAX_CORES = 1_000_000
MAX_MEMORY_GB = 100_000_000
MAX_GPUS = 1_000_000
MAX_MEASURED_KWH = 10_000_000.0  # 10 GWh: far above any single job (a 10,000-GPU week is ~2 GWh)
_MEASURED = (
    " IT energy (before PUE) measured while the job ran, in kWh; replaces the modelled figure of this "
    "component. The receipt's results.energy_sources says which components were measured or modelled, "
    "with the model's figure and a plausibility flag (measured within ×0.1–×10 of the model)."
)

# JSON numbers only: strict mode refuses ``true``/``false`` and numeric strings (lax mode takes ``true``
# as 1), still accepts an integer for a float field, and runs in pydantic-core (no Python call per job).
Num = Annotated[float, Strict()]


class JobIn(BaseModel):
    """One compute job. Seed fields first; the rest are optional overrides of the defaults."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    job_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=NO_CONTROL_PATTERN,
        examples=["ml-training-001"],
        description="Your id of the job, unique per account; no control characters (NUL, ANSI escapes)",
    )
    duration_minutes: Num = Field(gt=0, le=MAX_DURATION_MINUTES, examples=[120])
    cpu_cores: Num = Field(0.0, ge=0, le=MAX_CORES, description="CPU cores allocated", examples=[8])
    memory_gb: Num = Field(0.0, ge=0, le=MAX_MEMORY_GB, description="Memory allocated, GB", examples=[32])
    gpu_cores: Num = Field(0.0, ge=0, le=MAX_GPUS, description="Number of GPUs", examples=[2])
    geo_iso: str = Field(
        min_length=1,
        max_length=64,
        description="Where the job ran: ISO country (US, USA), subdivision (US-CA), EU, WORLD, grid region "
        "(CAISO…) or cloud region (aws:us-west-1). See GET /v1/locations.",
        examples=["US"],
    )
    cpu_model: str | None = Field(None, max_length=128, description="CPU model (W/core = TDP / cores)")
    gpu_model: str | None = Field(None, max_length=128, description="GPU model, e.g. H100, A100, L4, MI300X")
    cpu_utilization: Num | None = Field(None, ge=0, le=1, description="Average CPU usage factor (default 1)")
    gpu_utilization: Num | None = Field(None, ge=0, le=1, description="Average GPU usage factor (default 1)")
    pue: Num | None = Field(None, ge=1, le=3, description="Data-centre PUE (default: provider's, else 1.56)")
    provider: str | None = Field(None, max_length=32, description="Cloud provider: aws, gcp, azure, ovhcloud…")
    region: str | None = Field(None, max_length=64, description="Cloud region; its grid figure is used")
    ownership: Literal["owned", "leased", "colocation", "cloud"] | None = Field(
        None,
        description="Who owns/operates the hardware: owned, leased or colocation → the account's Scope 2; "
        "cloud → Scope 3 Category 1. Without it (and without provider) the job is reported as unclassified.",
    )
    site: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NO_CONTROL_PATTERN,
        description="The account's site/entity tag (market-based Scope 2 instruments are set per site)",
    )
    started_at: str | None = Field(
        None,
        max_length=40,
        description="When the job started, ISO 8601 instant with offset (2025-12-31T23:30:00Z); reports book "
        "the job at this time. Default: received time minus duration. Not before 2000-01-01, not more "
        "than 5 minutes in the future.",
        examples=["2025-12-31T23:30:00Z"],
    )
    application: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=NO_CONTROL_PATTERN,
        description="Application tag (SCI per application)",
    )
    measured_cpu_kwh: Num | None = Field(
        None, ge=0, le=MAX_MEASURED_KWH, description="CPU package energy from RAPL (powercap energy_uj)." + _MEASURED
    )
    measured_memory_kwh: Num | None = Field(
        None, ge=0, le=MAX_MEASURED_KWH, description="DRAM energy from the RAPL dram domain." + _MEASURED
    )
    measured_gpu_kwh: Num | None = Field(
        None, ge=0, le=MAX_MEASURED_KWH, description="GPU energy from NVML." + _MEASURED
    )

    @field_validator("started_at")
    @classmethod
    def _instant(cls, v: str | None) -> str | None:
        return None if v is None else normalise_instant(v)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH_JOBS)


class Breakdown(BaseModel):
    cpu_kwh: float
    gpu_kwh: float
    memory_kwh: float
    overhead_kwh: float = Field(description="Facility overhead: IT energy × (PUE − 1)")
    pue: float


class FactorOut(BaseModel):
    name: str
    value: float
    unit: str
    source: str
    dataset_version: str | None


class LocationRef(BaseModel):
    code: str
    name: str
    kind: str
    intensity_g_per_kwh: float
    year: int


class ReportData(BaseModel):
    job_id: str
    kwh: float
    co2_grams: float
    receipt_id: str
    timestamp: str
    breakdown: Breakdown
    location: LocationRef
    factors: list[FactorOut]
    warnings: list[str]
    methodology: dict[str, str]
    replayed: bool | None = Field(
        None, description="true when this job_id was reported before with the same inputs: its existing receipt"
    )
    energy_sources: dict[str, dict[str, Any]] | None = Field(
        None,
        description="Per component (cpu, gpu, memory): method 'measured' (source rapl or nvml, with "
        "measured_kwh, modelled_kwh and plausible) or 'modelled' (source green-algorithms-v3)",
    )


class ReportOut(BaseModel):
    status: str = "success"
    data: ReportData


class BatchJobOut(BaseModel):
    job_id: str
    kwh: float
    co2_grams: float
    receipt_id: str
    replayed: bool | None = Field(None, description="true: reported before with the same inputs (existing receipt)")


class BatchData(BaseModel):
    total_jobs: int
    total_kwh: float = Field(description="Exact sum (math.fsum) of the listed jobs' kwh")
    total_co2_grams: float = Field(description="Exact sum (math.fsum) of the listed jobs' co2_grams")
    jobs: list[BatchJobOut]
    replayed_jobs: int = Field(
        0, description="How many listed jobs are re-reports answered with their existing receipt"
    )
    tree: dict[str, Any] | None = Field(
        description="The signed Merkle tree head covering the batch's new receipts (null if every job was a re-report)"
    )


class BatchOut(BaseModel):
    status: str = "success"
    data: BatchData


class ReceiptSummary(BaseModel):
    receipt_id: str
    job_id: str
    kwh: float
    co2_grams: float
    timestamp: str


class IntegrityProblem(BaseModel):
    error_code: str = Field(examples=["RECEIPT_INTEGRITY_FAILED"])
    reason: str


class ListedReceipt(ReceiptSummary):
    integrity: Literal["failed"] | None = Field(
        None,
        description="Present only on a receipt that no longer matches its signed Merkle tree (altered after "
        "signing; GET /v1/receipts/{id} answers 409 RECEIPT_INTEGRITY_FAILED); intact receipts omit it",
    )
    integrity_error: IntegrityProblem | None = Field(None, description="Present with integrity: the reason")


class ReceiptListData(BaseModel):
    receipts: list[ListedReceipt]
    total: int
    has_more: bool


class ReceiptListOut(BaseModel):
    status: str = "success"
    data: ReceiptListData


class ReceiptDocument(ReceiptSummary):
    type: str
    receipt: dict[str, Any] = Field(description="The signed receipt (its RFC 8785 bytes are the Merkle leaf)")
    proof: dict[str, Any] = Field(description="leaf_index, tree_size, audit_path (hex, leaf to root), root_sha256")
    signed_tree_head: dict[str, Any] = Field(description="Verify with the key of GET /v1/receipts/public-key")


class ReceiptOut(BaseModel):
    status: str = "success"
    data: ReceiptDocument


class PublicKeyData(BaseModel):
    key_id: str
    algorithm: str
    public_key_pem: str
    public_key_raw_b64: str


class PublicKeyOut(BaseModel):
    status: str = "success"
    data: PublicKeyData


class StatsData(BaseModel):
    daily_api_calls: int
    daily_limit: int | None
    remaining_calls: int | None
    daily_usage_kwh: float
    daily_kwh_limit: float | None
    active_keys: int


class StatsOut(BaseModel):
    status: str = "success"
    data: StatsData


class LocationOut(BaseModel):
    code: str
    name: str
    kind: str
    intensity_g_per_kwh: float
    year: int
    source: str
    country: str | None
    grid_region: str | None
    provider: str | None
    aliases: list[str]


class LocationListData(BaseModel):
    locations: list[LocationOut]
    total: int
    version: str


class LocationListOut(BaseModel):
    status: str = "success"
    data: LocationListData
