"""``/v1/inference*``: the AI-inference footprint API (seed 004)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from powermeter.accounts.deps import Auth, Tx, ip_rate_limit
from powermeter.inference import schemas, service
from powermeter.inference.deps import Inference
from powermeter.infra.db.faults import UNIQUE_VIOLATIONS
from powermeter.infra.errors import BadRequest, Conflict, error_responses
from powermeter.infra.responses import FastJSONResponse

router = APIRouter(tags=["inference"])

MAX_LIMIT = 100_000


@router.post(
    "/v1/inference",
    operation_id="recordInference",
    response_model=None,
    responses={200: {"model": schemas.InferenceOut}, **error_responses("v1", 400, 401, 403, 429)},
    summary="Record one LLM request and get its energy, CO2e, water and tree-days",
    description=(
        "Records AI inference usage and returns the calculated energy (Wh), emissions (gCO2e, location-based, "
        "including the embodied share of the hardware), water (mL) and tree-days. The model id is resolved "
        "against the catalog (GET /v1/inference/models); `audit.calculationMethod` says which grid was used: "
        "`EXACT_REGION` (detected_region is a known region), `PROVIDER_DEFAULT` (the provider's usual region) "
        "or `GLOBAL_AVERAGE`. Closed models have parameter ranges, given in `ranges`. The record is stored "
        "with the API key that sent it. Method and sources: docs/methodology.md, section AI inference."
    ),
)
async def record_inference(
    body: schemas.InferenceIn, engine: Inference, tx: Tx = Auth("inference:write", hot_rows=True)
) -> FastJSONResponse:
    return FastJSONResponse(await tx.run(service.record, engine, tx.conn, tx.principal, tx.now, body, tx.state.signer))


@router.post(
    "/v1/inference/batch",
    operation_id="recordInferenceBatch",
    response_model=None,
    responses={200: {"model": schemas.InferenceBatchOut}, **error_responses("v1", 400, 401, 403, 409, 429)},
    summary="Record up to 1,000 LLM requests at once, each at most once (idempotency key per record)",
    description=(
        "Extension for senders that buffer records (`powermeter gateway`). Each record is `POST /v1/inference`'s "
        "body plus an `idempotency_key`, and is estimated and stored exactly as `POST /v1/inference` would store "
        "it. A key already stored for this account (or repeated in the batch) is not stored again: its entry says "
        "`duplicate` and carries the stored id and values, so a sender may retry a whole batch after a timeout. "
        "A record the catalog cannot resolve is `rejected` with the error code `POST /v1/inference` would give "
        "(retrying it cannot succeed); the others are stored. One transaction for the batch; 409 BATCH_CONFLICT "
        "when a concurrent batch stored one of the same keys meanwhile (retry: those become duplicates)."
    ),
)
async def record_inference_batch(
    body: schemas.InferenceBatchIn, engine: Inference, tx: Tx = Auth("inference:write", hot_rows=True)
) -> FastJSONResponse:
    try:
        out = await tx.run(service.record_batch, engine, tx.conn, tx.principal, tx.now, body.records, tx.state.signer)
    except UNIQUE_VIOLATIONS:
        raise Conflict(
            "a concurrent request stored some of these idempotency keys; retry the batch (they will be reported "
            "as duplicate)",
            code="BATCH_CONFLICT",
        ) from None
    return FastJSONResponse(out)


@router.get(
    "/v1/inference/history",
    operation_id="listInferenceHistory",
    response_model=None,
    responses={
        200: {
            "model": schemas.HistoryOut,
            "description": "Newest first. Pages of more than 1,000 records are streamed.",
        },
        **error_responses("v1", 400, 401, 403, 429),
    },
    summary="Paginated history of recorded requests, across all the account's API keys",
)
def inference_history(
    startDate: str | None = Query(None, description="ISO 8601 date (inclusive), e.g. 2025-01-01"),
    endDate: str | None = Query(None, description="ISO 8601 date (inclusive), e.g. 2025-12-31"),
    keyName: str | None = Query(None, max_length=200, description="Only records of the key with this name"),
    source: str | None = Query(
        None, max_length=100, description='Only records with this source ("gateway", "dom_estimated", …)'
    ),
    tag: str | None = Query(None, max_length=200, description="Only records with this caller tag"),
    page: int = Query(1, ge=1, le=10_000_000, description="Page number, from 1"),
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="Records per page (default 100, max 100,000)"),
    tx: Tx = Auth("history:read"),
) -> Any:
    q = service.HistoryQuery(
        account_id=tx.principal.account_id,
        start=service.parse_date(startDate, "startDate", end=False),
        end_exclusive=service.parse_date(endDate, "endDate", end=True),
        key_name=keyName,
        page=page,
        limit=limit,
        source=source,
        tag=tag,
    )
    q.validate()
    total = service.count(tx.conn, q)
    if min(limit, max(total - q.offset, 0)) > service.STREAM_THRESHOLD:
        return StreamingResponse(service.stream_history(tx.state.db, q, total), media_type="application/json")
    return FastJSONResponse(service.history_page(tx.conn, q, total))


@router.get(
    "/v1/inference/summary",
    operation_id="summarizeInference",
    response_model=schemas.SummaryOut,
    responses=error_responses("v1", 400, 401, 403, 429),
    summary="Totals of the account's recorded requests per model, provider, day or key",
)
def inference_summary(
    startDate: str | None = Query(None, description="ISO 8601 date (inclusive)"),
    endDate: str | None = Query(None, description="ISO 8601 date (inclusive)"),
    groupBy: str = Query("model", description="model | provider | day | key | tag | source"),
    source: str | None = Query(None, max_length=100, description="Only records with this source"),
    tag: str | None = Query(None, max_length=200, description="Only records with this caller tag"),
    tx: Tx = Auth("history:read"),
) -> dict[str, Any]:
    group_by = groupBy.strip().lower()
    allowed = service.GROUP_BY + service.RECORD_GROUP_BY
    if group_by not in allowed:
        raise BadRequest(f"groupBy must be one of {', '.join(allowed)}", code="INVALID_GROUP_BY")
    start = service.parse_date(startDate, "startDate", end=False)
    end = service.parse_date(endDate, "endDate", end=True)
    if start is not None and end is not None and start >= end:
        raise BadRequest("startDate must not be after endDate", code="INVALID_DATE_RANGE")
    groups, totals = service.summarize(tx.conn, tx.principal.account_id, start, end, group_by, source, tag)
    data: dict[str, Any] = {"groupBy": group_by, "startDate": startDate, "endDate": endDate}
    if source is not None:
        data["source"] = source
    if tag is not None:
        data["tag"] = tag
    return {"status": "success", "data": data | {"groups": groups, "totals": totals}}


@router.get(
    "/v1/inference/models",
    operation_id="listInferenceModels",
    response_model=schemas.ModelsOut,
    responses=error_responses("v1", 429),
    dependencies=[Depends(ip_rate_limit)],
    summary="The model catalog: every model id with its architecture, source and confidence (public)",
)
def list_models(engine: Inference) -> dict[str, Any]:
    return {"status": "success", "data": service.models_listing(engine)}


@router.get(
    "/v1/inference/models/{model_id:path}",
    operation_id="resolveInferenceModel",
    response_model=schemas.ModelResolutionOut,
    responses=error_responses("v1", 404, 429),
    dependencies=[Depends(ip_rate_limit)],
    summary="How one model id resolves (exact, alias, family, pattern or provider fallback) (public)",
)
def resolve_model(
    model_id: str,
    engine: Inference,
    provider: str | None = Query(None, max_length=100, description="Provider, for ids given without a vendor"),
) -> dict[str, Any]:
    return {"status": "success", "data": service.model_resolution(engine, model_id, provider)}
