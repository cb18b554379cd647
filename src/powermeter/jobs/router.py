"""HTTP routes of the compute-job capability (seed 000): report, batch, receipts, key stats, locations."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from powermeter.accounts import service as accounts
from powermeter.accounts.deps import Auth, Tx
from powermeter.infra.errors import error_responses
from powermeter.infra.responses import FastJSONResponse
from powermeter.infra.state import app_state
from powermeter.infra.validation import MAX_OFFSET
from powermeter.jobs import schemas as s
from powermeter.jobs import service as svc
from powermeter.jobs.deps import Jobs, Receipts
from powermeter.jobs.service import ReceiptAccess

router = APIRouter(tags=["compute jobs"])


def _receipt_links(pointer: str) -> dict[str, Any]:
    """OpenAPI links from a new receipt to reading it (clients and stateful API testers follow them)."""
    return {
        "GetReceipt": {"operationId": "getReceipt", "parameters": {"receipt_id": f"$response.body#{pointer}"}},
        "DownloadReceipt": {
            "operationId": "downloadReceipt",
            "parameters": {"receipt_id": f"$response.body#{pointer}"},
        },
    }


def _ok(data: Any) -> FastJSONResponse:
    return FastJSONResponse({"status": "success", "data": data})


@router.post(
    "/v1/report",
    operation_id="reportJob",
    summary="Report one compute job and receive a signed carbon receipt",
    response_model=s.ReportOut,
    description="Re-reporting a `job_id` with the same inputs returns its existing receipt (200, same "
    "`receipt_id`, `replayed: true`; nothing is stored or counted again); with different inputs it is a "
    "`409 JOB_ID_CONFLICT` naming the job and the fields that differ.",
    responses={**error_responses("v1", 400, 401, 403, 409, 429), 200: {"links": _receipt_links("/data/receipt_id")}},
)
async def report(body: s.JobIn, jobs: Jobs, tx: Tx = Auth("report:write", hot_rows=True)) -> FastJSONResponse:

    def work() -> dict[str, Any]:
        rec = jobs.record(tx.conn, tx.principal, tx.state.signer, tx.now, [body], field_prefix="")
        return jobs.report_data(body, rec, tx.conn)

    return _ok(await tx.run(work))  # inline on SQLite (no thread hop), in a thread on PostgreSQL


async def _raw_body(request: Request) -> bytes:
    return await request.body()


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "BatchIn",
                    "type": "object",
                    "properties": {
                        "jobs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/JobIn"},
                            "minItems": 1,
                            "maxItems": s.MAX_BATCH_JOBS,
                        }
                    },
                    "required": ["jobs"],
                    "additionalProperties": False,
                },
                "example": {
                    "jobs": [
                        {"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "memory_gb": 16, "geo_iso": "US"},
                        {"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"},
                    ]
                },
            }
        },
    }
}


@router.post(
    "/v1/batch",
    operation_id="reportBatch",
    summary="Report 1 to 10,000 jobs at once: all stored, or none",
    description="Atomic: if any job is invalid (a field, an unknown location, a job_id twice in the request) the "
    "whole batch is refused with a 400 that lists every invalid job by index and field, and nothing is stored. "
    "A job_id already reported with the same inputs gets its existing receipt back (`replayed: true`, not "
    "stored or counted again); with different inputs the whole batch is a `409 JOB_ID_CONFLICT` listing every "
    "conflicting job and field. One Merkle tree covers the new receipts; its head is signed once.",
    response_model=s.BatchOut,
    responses={
        **error_responses("v1", 400, 401, 403, 409, 429),
        200: {"links": _receipt_links("/data/jobs/0/receipt_id")},
    },
    openapi_extra=_BATCH_BODY,
)
async def batch(jobs: Jobs, raw: bytes = Depends(_raw_body), tx: Tx = Auth("report:write")) -> FastJSONResponse:

    def work() -> dict[str, Any]:
        with svc.gc_paused():
            body = jobs.parse_batch(raw)
            rec = jobs.record(tx.conn, tx.principal, tx.state.signer, tx.now, body.jobs, field_prefix="jobs[{i}].")
            return jobs.batch_data(body.jobs, rec)

    return _ok(await tx.run(work))


@router.get(
    "/v1/receipts",
    operation_id="listReceipts",
    summary="List your carbon receipts, newest first",
    response_model=s.ReceiptListOut,
    responses=error_responses("v1", 400, 401, 403, 429),
)
def list_receipts(
    limit: int = Query(50, ge=1, le=1000, description="Number of receipts (max 1000)"),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description=f"Pagination offset (0 to {MAX_OFFSET})"),
    job_id: str | None = Query(None, max_length=128, description="Only the receipt of this job"),
    tx: Tx = Auth("receipts:read"),
) -> FastJSONResponse:
    return _ok(
        svc.list_receipts(
            tx.conn, tx.principal.account_id, job_id=job_id, limit=limit, offset=offset, signer=tx.state.signer
        )
    )


@router.get(
    "/v1/receipts/public-key",
    operation_id="receiptsPublicKey",
    summary="The Ed25519 public key that signs receipt trees (no authentication)",
    response_model=s.PublicKeyOut,
)
def receipts_public_key(request: Request) -> FastJSONResponse:
    return _ok(svc.public_key(app_state(request).signer))


def _access(tx: Tx, action: str, receipt_id: str) -> ReceiptAccess:
    p = tx.principal
    return ReceiptAccess(action, p.account_id, receipt_id, tx.now, p.key_id, p.masked_key)


@router.get(
    "/v1/receipts/{receipt_id}",
    operation_id="getReceipt",
    summary="One receipt with its Merkle inclusion proof and signed tree head (verifiable offline)",
    response_model=s.ReceiptOut,
    responses=error_responses("v1", 401, 403, 404, 409, 429),
)
def get_receipt(receipt_id: str, views: Receipts, tx: Tx = Auth("receipts:read")) -> FastJSONResponse:
    return _ok(views.open(tx.conn, _access(tx, "VIEW", receipt_id)))


@router.get(
    "/v1/receipts/{receipt_id}/download",
    operation_id="downloadReceipt",
    summary="The receipt document as a file, for `powermeter receipts verify FILE`",
    responses={200: {"content": {"application/json": {}}}, **error_responses("v1", 401, 403, 404, 409, 429)},
)
def download_receipt(receipt_id: str, views: Receipts, tx: Tx = Auth("receipts:read")) -> Response:
    doc = views.open(tx.conn, _access(tx, "DOWNLOAD", receipt_id))
    return Response(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{receipt_id}.json"'},
    )


@router.get(
    "/v1/api-keys/stats",
    operation_id="apiKeyStats",
    summary="Today's API calls, limits, tracked energy and active keys",
    response_model=s.StatsOut,
    responses=error_responses("v1", 401, 403, 429),
)
def api_key_stats(tx: Tx = Auth("receipts:read")) -> FastJSONResponse:
    st = accounts.daily_stats(tx.conn, tx.principal, tx.now)
    return _ok(
        {
            "daily_api_calls": st.daily_api_calls,
            "daily_limit": st.daily_limit,
            "remaining_calls": st.remaining_calls,
            "daily_usage_kwh": st.daily_usage_kwh,
            "daily_kwh_limit": st.daily_kwh_limit,
            "active_keys": st.active_keys,
        }
    )


@router.get(
    "/v1/locations",
    operation_id="listLocations",
    summary="Every accepted geo_iso / region value with its carbon intensity, year and source",
    response_model=s.LocationListOut,
    responses=error_responses("v1", 400),
)
def list_locations(
    jobs: Jobs,
    kind: str | None = Query(None, pattern="^(country|subdivision|aggregate|grid|cloud)$"),
    provider: str | None = Query(None, max_length=32, description="Cloud provider (aws, gcp, azure)"),
) -> Response:
    if kind is None and provider is None:
        return Response(jobs.locations_body(), media_type="application/json")
    locs = [
        loc.as_dict()
        for loc in jobs.locations.all()
        if (kind is None or loc.kind == kind) and (provider is None or loc.provider == provider.lower())
    ]
    return _ok({"locations": locs, "total": len(locs), "version": jobs.locations.version})
