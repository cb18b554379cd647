"""Request and response shapes of the compute-job API (seed 000), with the added detail fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from powermeter.infra.validation import NO_CONTROL_PATTERN

MAX_BATCH_JOBS = 10_000
MAX_DURATION_MINUTES = 60 * 24 * 366 * 10  # ten years
MAX_CORES = 1_000_000
MAX_MEMORY_GB = 100_000_000
MAX_GPUS = 1_000_000

# JSON numbers only: strict mode refuses ``true``/``false`` and numeric strings (lax mode takes ``true``
# as 1), still accepts an integer for a float field, and runs in pydantic-core (no Python call per job).
Num = Annotated[float, Strict()]


class JobIn(BaseModel):
    """One compute job. Seed fields first; the rest are optional overrides of the defaults."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    job_id: str = Field(
        min_length=1, max_length=128, pattern=NO_CONTROL_PATTERN, examples=["ml-training-001"],
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


class ReportOut(BaseModel):
    status: str = "success"
    data: ReportData


class BatchJobOut(BaseModel):
    job_id: str
    kwh: float
    co2_grams: float
    receipt_id: str


class BatchData(BaseModel):
    total_jobs: int
    total_kwh: float
    total_co2_grams: float
    jobs: list[BatchJobOut]
    tree: dict[str, Any] = Field(description="The signed Merkle tree head covering every receipt of the batch")


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
