"""``/v1/inference*``: the AI-inference footprint API (seed 004)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from powermeter.accounts.deps import Auth, Tx, ip_rate_limit
from powermeter.inference import schemas, service
from powermeter.infra.errors import BadRequest, error_responses
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
async def record_inference(body: schemas.InferenceIn, tx: Tx = Auth("inference:write")) -> FastJSONResponse:
    return FastJSONResponse(await tx.run(service.record, tx.conn, tx.principal, tx.now, body, tx.state.signer))


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
    groupBy: str = Query("model", description="model | provider | day | key"),
    tx: Tx = Auth("history:read"),
) -> dict[str, Any]:
    group_by = groupBy.strip().lower()
    if group_by not in service.GROUP_BY:
        raise BadRequest(f"groupBy must be one of {', '.join(service.GROUP_BY)}", code="INVALID_GROUP_BY")
    start = service.parse_date(startDate, "startDate", end=False)
    end = service.parse_date(endDate, "endDate", end=True)
    if start is not None and end is not None and start >= end:
        raise BadRequest("startDate must not be after endDate", code="INVALID_DATE_RANGE")
    groups, totals = service.summarize(tx.conn, tx.principal.account_id, start, end, group_by)
    return {
        "status": "success",
        "data": {"groupBy": group_by, "startDate": startDate, "endDate": endDate, "groups": groups, "totals": totals},
    }


@router.get(
    "/v1/inference/models",
    operation_id="listInferenceModels",
    response_model=schemas.ModelsOut,
    responses=error_responses("v1", 429),
    dependencies=[Depends(ip_rate_limit)],
    summary="The model catalog: every model id with its architecture, source and confidence (public)",
)
def list_models() -> dict[str, Any]:
    return {"status": "success", "data": service.models_listing()}


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
    provider: str | None = Query(None, max_length=100, description="Provider, for ids given without a vendor"),
) -> dict[str, Any]:
    return {"status": "success", "data": service.model_resolution(model_id, provider)}
