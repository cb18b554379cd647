"""Request and response models of the AI-inference routes (seed 004's fields, plus documented extras)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from powermeter.infra.validation import MAX_EPOCH_MS, NO_CONTROL_PATTERN, NoBool

MAX_TOKENS = 100_000_000  # per field; far above any context window, keeps the arithmetic sane

# An integer from JSON: ``true``/``false`` are refused (lax mode would read them as 1/0); 5.0 is still 5.
Int = Annotated[int, NoBool]


class InferenceIn(BaseModel):
    """One LLM request, as the seed's ``POST`` body (unknown fields are ignored)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "provider": "Google",
                    "model": "gemini-3-pro",
                    "prompt_tokens": 788,
                    "completion_tokens": 312,
                    "reasoning_tokens": 0,
                    "cached_tokens": 0,
                    "startTimeMs": 1710000000000,
                    "firstTokenTimeMs": 1710000010000,
                    "source": "dom_estimated",
                    "is_estimated": True,
                    "estimation_method": "dom_gpt_tokenizer_v1",
                }
            ]
        },
    )

    provider: str = Field(
        min_length=1,
        max_length=100,
        pattern=NO_CONTROL_PATTERN,
        description='Cloud or model provider ("Google", "OpenAI")',
    )
    prompt_tokens: Int = Field(ge=0, le=MAX_TOKENS, description="Tokens sent in the prompt (cached ones included)")
    completion_tokens: Int = Field(ge=0, le=MAX_TOKENS, description="Generated output tokens")
    model: str | None = Field(
        None,
        max_length=200,
        pattern=NO_CONTROL_PATTERN,
        description="Model id (OpenRouter style like `qwen/qwen3-235b-a22b`, or the provider's own name); "
        "optional when the provider has a fallback model class",
    )
    detected_region: str | None = Field(
        None,
        max_length=100,
        pattern=NO_CONTROL_PATTERN,
        description='Data-centre region ("us-west-1", "aws:eu-west-1", "europe-west4", a country code…); '
        "a known one gives calculationMethod EXACT_REGION",
    )
    reasoning_tokens: Int = Field(
        0,
        ge=0,
        le=MAX_TOKENS,
        description="Reasoning tokens reported by the provider; counted once (inside completion_tokens for "
        "OpenAI-style usage, added to them for Google's separately reported thoughts)",
    )
    cached_tokens: Int = Field(0, ge=0, le=MAX_TOKENS, description="Prompt tokens read from the prompt cache")
    startTimeMs: Int | None = Field(
        None,
        ge=0,
        le=MAX_EPOCH_MS,
        description="Request start, epoch milliseconds; the record is booked (history, "
        "reports) at this time when given (not before 2000-01-01, at most 5 minutes ahead of the server), else when "
        "received",
    )
    firstTokenTimeMs: Int | None = Field(
        None, ge=0, le=MAX_EPOCH_MS, description="First token received, epoch milliseconds (up to year 9999)"
    )
    endTimeMs: Int | None = Field(
        None,
        ge=0,
        le=MAX_EPOCH_MS,
        description="Extension: last token received, epoch milliseconds (caps the latency); not before startTimeMs",
    )
    source: str | None = Field(
        None, max_length=100, pattern=NO_CONTROL_PATTERN, description="Where the counts come from (stored)"
    )
    is_estimated: bool | None = Field(None, description="Whether the token counts are estimates (stored)")
    estimation_method: str | None = Field(
        None, max_length=100, pattern=NO_CONTROL_PATTERN, description="How they were estimated (stored)"
    )
    tag: str | None = Field(
        None,
        max_length=200,
        pattern=NO_CONTROL_PATTERN,
        description="Extension: a caller's label (an app, a feature, a team), stored and filterable in the "
        "history and the summary; `powermeter gateway` fills it from the X-Powermeter-Tag header",
    )
    application: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=NO_CONTROL_PATTERN,
        description="Extension: application tag (reports, SCI per application)",
    )

    @field_validator("endTimeMs")
    @classmethod
    def _end_not_before_start(cls, v: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("startTimeMs")
        if v is not None and start is not None and v < start:
            raise ValueError(f"must not be before startTimeMs ({start}), got {v}")
        return v


MAX_BATCH = 1000


class InferenceBatchItem(InferenceIn):
    """One record of a batch: ``POST /v1/inference``'s body plus the sender's idempotency key."""

    idempotency_key: str = Field(
        min_length=1,
        max_length=200,
        description="Unique per record and API-key account: a record whose key was already stored is not "
        "stored again (status `duplicate`), so a sender can retry a batch safely",
    )


class InferenceBatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    records: list[InferenceBatchItem] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} records"
    )


class BatchItemOut(BaseModel):
    index: int = Field(description="Position of the record in the request")
    idempotency_key: str
    status: Literal["created", "duplicate", "rejected"]
    id: str | None = Field(None, description="Stored record id (created or duplicate)")
    energy_wh: float | None = None
    co2_grams: float | None = None
    water_ml: float | None = None
    error_code: str | None = Field(None, description="Why a rejected record was refused (e.g. UNKNOWN_MODEL)")
    detail: str | None = None


class InferenceBatchOut(BaseModel):
    status: Literal["success"] = "success"
    created: int
    duplicates: int
    rejected: int
    data: list[BatchItemOut]


class Audit(BaseModel):
    calculationMethod: Literal["EXACT_REGION", "PROVIDER_DEFAULT", "GLOBAL_AVERAGE"]
    finalRegion: str = Field(examples=["us-west-1"])
    finalProvider: str = Field(examples=["AWS"])


class Range(BaseModel):
    min: float
    max: float


class InferenceOut(BaseModel):
    """The seed's fields first; everything after ``message`` is a documented extension."""

    energy_wh: float = Field(description="Facility energy (IT × PUE), central value, Wh", examples=[3.45])
    co2_grams: float = Field(description="Location-based usage + embodied emissions, gCO2e", examples=[1.22])
    water_ml: float = Field(description="On-site + off-site water consumption, mL", examples=[0.85])
    tree_days: float = Field(description="Days a mature tree needs to absorb co2_grams", examples=[0.005])
    audit: Audit
    message: str = Field(examples=["This request cost the equivalent of 0.0050 days of a tree's carbon absorption."])
    id: str = Field(description="Id of the stored record")
    ranges: dict[str, Range] = Field(
        description="[min, max] of energy_wh, co2_grams, water_ml (closed models have parameter ranges)"
    )
    breakdown: dict[str, float] = Field(
        description="prefill_wh + decode_wh + server_wh = energy_wh; co2 usage and embodied parts; latency_s"
    )
    tokens: dict[str, int] = Field(description="Tokens as counted: output (reasoning once), uncached and cached prompt")
    model: dict[str, Any] = Field(description="How the model id was resolved, and the architecture used")
    factors: dict[str, Any] = Field(description="Grid, PUE, WUE and water factors with their sources")
    methodology: dict[str, Any] = Field(description="Methodology and dataset versions")
    warnings: list[str]


class HistoryRecord(BaseModel):
    id: str
    logDate: str = Field(examples=["2025-05-10T12:00:00Z"])
    keyName: str = Field(examples=["Production Key"])
    maskedKey: str = Field(examples=["pm_live_...a1b2"])
    provider: str = Field(examples=["OpenAI"])
    model: str = Field(examples=["gpt-4o"])
    inputTokens: int
    outputTokens: int
    energyWh: float
    co2Grams: float
    waterMl: float
    treeDays: float
    modelId: str = Field(description="Catalog entry the model resolved to")
    calculationMethod: str
    finalRegion: str
    source: str | None = Field(None, description='Where the counts came from ("gateway", "dom_estimated", …)')
    tag: str | None = Field(None, description="The caller's tag, if any")


class Pagination(BaseModel):
    totalElements: int
    totalPages: int
    currentPage: int
    limit: int


class HistoryOut(BaseModel):
    status: Literal["success"] = "success"
    data: list[HistoryRecord]
    pagination: Pagination


class SummaryGroup(BaseModel):
    key: str
    requests: int
    inputTokens: int
    outputTokens: int
    energyWh: float
    co2Grams: float
    waterMl: float
    treeDays: float


class SummaryData(BaseModel):
    groupBy: str
    startDate: str | None
    endDate: str | None
    groups: list[SummaryGroup]
    totals: SummaryGroup


class SummaryOut(BaseModel):
    status: Literal["success"] = "success"
    data: SummaryData


class ModelsOut(BaseModel):
    status: Literal["success"] = "success"
    data: dict[str, Any] = Field(
        description="version, count, models, classes, vendorFallbacks, and constants: every constant of the "
        "estimate with its value, unit and public source"
    )


class ModelResolutionOut(BaseModel):
    status: Literal["success"] = "success"
    data: dict[str, Any] = Field(description="The resolution (match kind, confidence, source) and the entry")
