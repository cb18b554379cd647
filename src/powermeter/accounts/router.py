"""Routes about the caller: who am I, and the account's API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from powermeter.accounts import service
from powermeter.accounts.deps import Accounts, Auth, Tx
from powermeter.infra.errors import error_responses
from powermeter.infra.responses import FastJSONResponse

router = APIRouter(tags=["account"])


def _keys(tx: Tx) -> list[dict[str, Any]]:
    return service.list_keys(tx.conn, tx.principal.account_id)


@router.get(
    "/v1/me",
    operation_id="whoami",
    responses=error_responses("v1", 401, 429),
    summary="The account and key making this call",
)
async def whoami(tx: Tx = Auth(daily_quota=False)) -> FastJSONResponse:
    p = tx.principal
    plan = p.plan
    return FastJSONResponse(
        {
            "status": "success",
            "data": {
                "account_id": p.account_id,
                "email": p.email,
                "plan": {
                    "name": plan.name,
                    "daily_calls": plan.daily_calls,
                    "daily_kwh": plan.daily_kwh,
                    "per_minute": plan.per_minute,
                    "route_monthly_calls": plan.route_monthly_calls,
                    "route_regions": plan.route_regions,
                },
                "key": {"id": p.key_id, "name": p.key_name, "masked_key": p.masked_key, "scopes": sorted(p.scopes)},
            },
        }
    )


@router.get(
    "/v1/api-keys",
    operation_id="listApiKeys",
    responses=error_responses("v1", 401, 403, 429),
    summary="The account's API keys (masked)",
)
def list_api_keys(tx: Tx = Auth("keys:manage", daily_quota=False)) -> dict[str, Any]:
    return {"status": "success", "data": {"keys": _keys(tx)}}


@router.delete(
    "/v1/api-keys/{key_id}",
    operation_id="revokeApiKey",
    responses=error_responses("v1", 401, 403, 404, 429),
    summary="Revoke one of the account's keys",
)
def revoke_api_key(key_id: str, accounts: Accounts, tx: Tx = Auth("keys:manage", daily_quota=False)) -> dict[str, Any]:
    accounts.revoke_key(tx.conn, key_id, tx.now, account_id=tx.principal.account_id)
    return {"status": "success", "data": {"id": key_id, "revoked": True}}


@router.get(
    "/api/v1/me/tokens",
    operation_id="listTokens",
    responses=error_responses("calc", 401, 403, 429),
    summary="The account's API tokens (masked)",
)
def list_tokens(tx: Tx = Auth("keys:manage")) -> list[dict[str, Any]]:
    return _keys(tx)
