"""``/v1/audit/*``: the tamper-evident audit log (seed 000, "Audit & Compliance")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from powermeter.accounts.deps import Auth, Tx
from powermeter.audit import schemas, service
from powermeter.infra.errors import BadRequest, error_responses

router = APIRouter(tags=["audit"])

MAX_LIMIT = 1000


@router.get(
    "/v1/audit/logs",
    operation_id="listAuditLogs",
    response_model=schemas.AuditLogsOut,
    responses=error_responses("v1", 400, 401, 403, 429),
    summary="Tamper-evident audit log, newest first",
    description=(
        "Every view, download and edit of a receipt, and key/account events, hash-chained per account. "
        "`signature` is the entry's hash in the chain; `verified` is true when the chain checks out up "
        "to and including the entry at the time of this call."
    ),
)
def list_audit_logs(
    action_type: str | None = Query(
        None,
        description="VIEW, EDIT, DOWNLOAD (or KEY_CREATED, KEY_REVOKED, …; "
        "TREE_SIGNED ingest anchors only when asked for by name)",
    ),
    receipt_id: str | None = Query(None, max_length=64, description="Only entries about this receipt"),
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="Number of entries (default 100)"),
    tx: Tx = Auth("audit:read"),
) -> dict[str, Any]:
    if action_type is not None:
        action_type = action_type.strip().upper()
        if action_type not in service.ACTION_TYPES:
            raise BadRequest(
                f"action_type must be one of {', '.join(service.ACTION_TYPES)}", code="INVALID_ACTION_TYPE"
            )
    logs, total, _ = service.list_logs(
        tx.conn,
        tx.principal.account_id,
        [service.PublicKey.of(tx.state.signer)],
        action_type=action_type,
        receipt_id=receipt_id,
        limit=limit,
    )
    return {"status": "success", "data": {"logs": logs, "total": total}}


@router.get(
    "/v1/audit/verify",
    operation_id="verifyAuditLog",
    response_model=schemas.VerifyOut,
    responses=error_responses("v1", 401, 403, 429),
    summary="Recompute the account's audit chain and check it against the signed checkpoints",
)
def verify_audit_log(tx: Tx = Auth("audit:read")) -> dict[str, Any]:
    keys = [service.PublicKey.of(tx.state.signer)]
    report = service.verify_account(tx.conn, tx.principal.account_id, keys)
    return {"status": "success", "data": service.verify_report_json(report, keys)}


@router.post(
    "/v1/audit/checkpoints",
    operation_id="createAuditCheckpoint",
    status_code=201,
    response_model=schemas.CheckpointOut,
    responses=error_responses("v1", 401, 403, 429),
    summary="Sign the account's chain head now (keep the result to check the log later)",
)
def create_audit_checkpoint(tx: Tx = Auth("audit:read")) -> dict[str, Any]:
    cp = service.create_checkpoint(tx.conn, tx.state.signer, tx.principal.account_id, tx.now)
    return {"status": "success", "data": cp.as_json()}


@router.get(
    "/v1/audit/checkpoints",
    operation_id="listAuditCheckpoints",
    response_model=schemas.CheckpointsOut,
    responses=error_responses("v1", 400, 401, 403, 429),
    summary="The account's signed checkpoints, newest first, with the public key to check them",
)
def list_audit_checkpoints(
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    tx: Tx = Auth("audit:read"),
) -> dict[str, Any]:
    cps, total = service.list_checkpoints(tx.conn, tx.principal.account_id, limit=limit)
    return {
        "status": "success",
        "data": {
            "checkpoints": [cp.as_json() for cp in cps],
            "total": total,
            "public_keys": [service.PublicKey.of(tx.state.signer).as_json()],
        },
    }
