"""Devices & profile API (seed 001): ``/api/v1/me/*`` and ``/api/v1/catalog/devices``.

Auth by ``X-API-Key`` or ``Authorization: Bearer``; scopes ``devices:read`` / ``devices:write``;
60 requests/minute per key; error bodies ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from powermeter.accounts.deps import Auth, Tx
from powermeter.devices import service
from powermeter.devices.deps import DevicesDep
from powermeter.devices.schemas import DEVICE_EXAMPLE, DeviceIn, DeviceOut, DevicePatch, ProfileIn, ProfileOut
from powermeter.infra.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["devices & profile"])

_READ = error_responses("calc", 401, 403, 429)
_WRITE = error_responses("calc", 400, 401, 403, 429)


def _device_doc(example: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": example}}}}


@router.get(
    "/me/devices",
    operation_id="listMyDevices",
    summary="List all tracked devices",
    response_model=list[DeviceOut],
    responses={**_device_doc([DEVICE_EXAMPLE]), **_READ},
)
def list_devices(tx: Tx = Auth("devices:read")) -> list[dict[str, Any]]:
    return service.list_devices(tx.conn, tx.principal.account_id)


@router.post(
    "/me/devices",
    operation_id="createMyDevice",
    status_code=201,
    response_model=DeviceOut,
    summary="Track a device (from the catalog: watts are snapshotted)",
    responses={201: {"content": {"application/json": {"example": DEVICE_EXAMPLE}}}, **_WRITE},
)
def create_device(body: DeviceIn, devices: DevicesDep, tx: Tx = Auth("devices:write")) -> dict[str, Any]:
    return service.create_device(tx.conn, tx.principal.account_id, body, devices.catalog, tx.now)


@router.get(
    "/me/devices/{device_id}",
    operation_id="getMyDevice",
    response_model=DeviceOut,
    responses={**_device_doc(DEVICE_EXAMPLE), **error_responses("calc", 401, 403, 404, 429)},
)
def get_device(device_id: str, tx: Tx = Auth("devices:read")) -> dict[str, Any]:
    return service.get_device(tx.conn, tx.principal.account_id, device_id)


@router.patch(
    "/me/devices/{device_id}",
    operation_id="updateMyDevice",
    response_model=DeviceOut,
    responses={**_device_doc(DEVICE_EXAMPLE), **error_responses("calc", 400, 401, 403, 404, 429)},
)
def update_device(
    device_id: str, body: DevicePatch, devices: DevicesDep, tx: Tx = Auth("devices:write")
) -> dict[str, Any]:
    return service.update_device(tx.conn, tx.principal.account_id, device_id, body, devices.catalog, tx.now)


@router.delete(
    "/me/devices/{device_id}",
    operation_id="deleteMyDevice",
    status_code=204,
    responses=error_responses("calc", 401, 403, 404, 429),
)
def delete_device(device_id: str, tx: Tx = Auth("devices:write")) -> Response:
    service.delete_device(tx.conn, tx.principal.account_id, device_id)
    return Response(status_code=204)


@router.get(
    "/me/profile",
    operation_id="getMyProfile",
    response_model=ProfileOut,
    response_model_exclude_unset=True,
    summary="Rate configuration and location ({} when none yet)",
    responses={
        **_device_doc({"region_code": "US-CA", "rate_config": None, "created_at": "2025-01-10T09:00:00Z"}),
        **_READ,
    },
)
def get_profile(tx: Tx = Auth("devices:read")) -> dict[str, Any]:
    return service.get_profile(tx.conn, tx.principal.account_id)


@router.put(
    "/me/profile",
    operation_id="putMyProfile",
    response_model=ProfileOut,
    summary="Set the region code and/or a custom rate override",
    responses=_WRITE,
)
def put_profile(body: ProfileIn, devices: DevicesDep, tx: Tx = Auth("devices:write")) -> dict[str, Any]:
    rates = devices.rates.get_with(tx.conn)
    return service.put_profile(tx.conn, tx.principal.account_id, body, rates, tx.now)


@router.get(
    "/me/costs",
    operation_id="getMyCosts",
    summary="Each device's daily/monthly/annual cost under the profile's rate, and the total",
    responses=error_responses("calc", 400, 401, 403, 404, 429),
)
def get_costs(
    devices: DevicesDep,
    region_code: str | None = Query(default=None, description="Override the profile's region for this call"),
    include_fixed_charges: bool = Query(default=False, description="Add the tariff's fixed daily charge to the total"),
    tx: Tx = Auth("devices:read"),
) -> dict[str, Any]:
    rates = devices.rates.get_with(tx.conn)
    return service.costs(
        tx.conn, tx.principal.account_id, rates, region_override=region_code, include_fixed=include_fixed_charges
    )


@router.get(
    "/catalog/devices",
    operation_id="listCatalogDevices",
    summary="Common household devices with typical and standby watts and a source",
    responses=error_responses("calc", 401, 429),
)
def catalog_devices(
    devices: DevicesDep,
    category: str | None = Query(default=None, description="Only this category (networking, kitchen, …)"),
    tx: Tx = Auth(),
) -> dict[str, Any]:
    cat = devices.catalog
    return {"dataset_version": cat.version, "devices": cat.listing(category)}
