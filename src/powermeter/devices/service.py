"""Tracked devices, the rate profile and their costs (seed 001), for one authenticated account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from powermeter.cost import service as cost_service
from powermeter.data.devices import DeviceCatalog
from powermeter.data.rates import RatesDataset
from powermeter.devices import repository as repo
from powermeter.devices.schemas import DeviceIn, DevicePatch, ProfileIn
from powermeter.infra.clock import utc_iso
from powermeter.infra.errors import BadRequest, Conflict, NotFound
from powermeter.methodology import tariff as t
from powermeter.methodology.tariff import TariffInputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MAX_DEVICES_PER_ACCOUNT = 1000


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def device_out(row: dict[str, Any]) -> dict[str, Any]:
    sched = row["schedule"]
    return {
        "id": row["id"],
        "name": row["name"],
        "catalog_device_slug": row["catalog_device_slug"],
        "watts": _num(row["watts"]),
        "hours_per_day": _num(row["hours_per_day"]),
        "schedule": None if sched is None else [[_num(a), _num(b)] for a, b in sched],
        "shiftable": bool(row["shiftable"]),
        "metadata": row["metadata"],
        "created_at": utc_iso(row["created_at"]),
        "updated_at": utc_iso(row["updated_at"]),
    }


def _schedule(raw: list[list[float]] | None) -> tuple[tuple[Decimal, Decimal], ...] | None:
    if raw is None:
        return None
    try:
        return t.parse_schedule(raw, "schedule")
    except TariffInputError as exc:
        raise cost_service.bad(exc) from None


def _check_hours(hours: float | None, sched: tuple[tuple[Decimal, Decimal], ...] | None) -> float:
    if sched is None:
        if hours is None:
            raise BadRequest("hours_per_day: is required (or give a schedule)", extra={"field": "hours_per_day"})
        return hours
    span = float(sum((e - s for s, e in sched), Decimal(0)))
    if hours is None:
        return span
    if hours > span + 1e-9:
        raise BadRequest(
            f"hours_per_day: {hours} h exceeds the schedule's {span:g} h; lengthen the schedule or lower hours_per_day",
            extra={"field": "hours_per_day"},
        )
    return hours


def _catalog_entry(catalog: DeviceCatalog, slug: str) -> Any:
    entry = catalog.get(slug)
    if entry is None:
        raise BadRequest(
            f"catalog_device_slug: unknown slug {slug!r}; see GET /api/v1/catalog/devices",
            extra={"field": "catalog_device_slug"},
        )
    return entry


def _device_id(device_id: str) -> str:
    try:
        return str(uuid.UUID(device_id))
    except ValueError:
        raise NotFound(f"no device {device_id!r}", slug="device_not_found") from None


def create_device(
    conn: Connection, account_id: str, body: DeviceIn, catalog: DeviceCatalog, now: datetime
) -> dict[str, Any]:
    name, watts = body.name, body.watts
    if body.catalog_device_slug is not None:
        entry = _catalog_entry(catalog, body.catalog_device_slug)
        name = name or entry.name
        if watts is None:
            watts = float(entry.typical_watts)  # snapshot: later catalog edits do not change the device
    if name is None:
        raise BadRequest("name: is required (or give catalog_device_slug)", extra={"field": "name"})
    if watts is None:
        raise BadRequest("watts: is required (or give catalog_device_slug)", extra={"field": "watts"})
    sched = _schedule(body.schedule)
    hours = _check_hours(body.hours_per_day, sched)
    if repo.count_devices(conn, account_id) >= MAX_DEVICES_PER_ACCOUNT:
        raise Conflict(f"at most {MAX_DEVICES_PER_ACCOUNT} devices per account", slug="device_limit_reached")
    new_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": new_id,
        "account_id": account_id,
        "name": name,
        "catalog_device_slug": body.catalog_device_slug,
        "watts": watts,
        "hours_per_day": hours,
        "schedule": None if sched is None else [[float(a), float(b)] for a, b in sched],
        "shiftable": body.shiftable,
        "metadata": body.metadata,
        "created_at": now,
        "updated_at": now,
    }
    repo.insert_device(conn, values)
    row = repo.get_device(conn, account_id, new_id)
    assert row is not None  # noqa: S101 (just inserted in this transaction)
    return device_out(row)


def get_device(conn: Connection, account_id: str, device_id: str) -> dict[str, Any]:
    row = repo.get_device(conn, account_id, _device_id(device_id))
    if row is None:
        raise NotFound(f"no device {device_id!r}", slug="device_not_found")
    return device_out(row)


def update_device(
    conn: Connection, account_id: str, device_id: str, patch: DevicePatch, catalog: DeviceCatalog, now: datetime
) -> dict[str, Any]:
    did = _device_id(device_id)
    row = repo.get_device(conn, account_id, did)
    if row is None:
        raise NotFound(f"no device {device_id!r}", slug="device_not_found")
    sent = patch.model_fields_set
    for key in ("name", "watts", "hours_per_day", "shiftable", "metadata"):
        if key in sent and getattr(patch, key) is None:
            raise BadRequest(f"{key}: cannot be null", extra={"field": key})
    values: dict[str, Any] = {k: getattr(patch, k) for k in sent}
    if "catalog_device_slug" in sent and patch.catalog_device_slug is not None:
        entry = _catalog_entry(catalog, patch.catalog_device_slug)
        if "watts" not in sent and patch.catalog_device_slug != row["catalog_device_slug"]:
            values["watts"] = float(entry.typical_watts)
    sched_raw = patch.schedule if "schedule" in sent else row["schedule"]
    sched = _schedule(sched_raw)
    if "schedule" in sent:
        values["schedule"] = None if sched is None else [[float(a), float(b)] for a, b in sched]
    if "hours_per_day" in sent:
        hours = patch.hours_per_day
    elif "schedule" in sent and sched is not None:
        # a new schedule without new hours: keep the old runtime if it fits, else run the whole schedule
        span = float(sum((e - s for s, e in sched), Decimal(0)))
        hours = min(float(row["hours_per_day"]), span)
    else:
        hours = float(row["hours_per_day"])
    values["hours_per_day"] = _check_hours(hours, sched)
    values["updated_at"] = now
    repo.update_device(conn, account_id, did, values)
    updated = repo.get_device(conn, account_id, did)
    assert updated is not None  # noqa: S101
    return device_out(updated)


def delete_device(conn: Connection, account_id: str, device_id: str) -> None:
    if not repo.delete_device(conn, account_id, _device_id(device_id)):
        raise NotFound(f"no device {device_id!r}", slug="device_not_found")


def list_devices(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    return [device_out(r) for r in repo.list_devices(conn, account_id)]


# ---------------------------------------------------------------------------------------------
# profile


def profile_out(p: dict[str, Any] | None) -> dict[str, Any]:
    if p is None:
        return {}
    return {"region_code": p["region_code"], "rate_config": p["rate_config"], "created_at": utc_iso(p["created_at"])}


def get_profile(conn: Connection, account_id: str) -> dict[str, Any]:
    return profile_out(repo.get_profile(conn, account_id))


def put_profile(
    conn: Connection, account_id: str, body: ProfileIn, rates: RatesDataset, now: datetime
) -> dict[str, Any]:
    region = None
    if body.region_code is not None:
        rec = rates.region(body.region_code)
        if rec is None:
            raise BadRequest(
                f"region_code: unknown region {body.region_code!r}; see GET /calc/api/rates/index",
                extra={"field": "region_code"},
            )
        region = rec.code
    if body.rate_config is not None:
        cost_service.compile_inline(body.rate_config, "rate_config")  # 400 naming the field if invalid
    repo.upsert_profile(conn, account_id, region, body.rate_config, now)
    return get_profile(conn, account_id)


# ---------------------------------------------------------------------------------------------
# costs


def _usage(row: dict[str, Any]) -> t.DeviceUsage:
    sched = row["schedule"]
    return t.DeviceUsage(
        watts=t.dec(row["watts"], "watts"),
        hours_per_day=t.dec(row["hours_per_day"], "hours_per_day"),
        schedule=None if sched is None else tuple((t.dec(a, "s"), t.dec(b, "s")) for a, b in sched),
        shiftable=bool(row["shiftable"]),
    )


def costs(
    conn: Connection,
    account_id: str,
    rates: RatesDataset,
    *,
    region_override: str | None = None,
    include_fixed: bool = False,
) -> dict[str, Any]:
    profile = repo.get_profile(conn, account_id)
    region = region_override or (profile or {}).get("region_code")
    cfg = None if region_override else (profile or {}).get("rate_config")
    if cfg is not None:
        rate = cost_service.compile_inline(cfg, "rate_config")
        provenance: dict[str, Any] = {"rate_source": "rate_config", "region_code": region}
    elif region is not None:
        if rates.region(region) is None:
            raise NotFound(f"unknown region {region!r}", slug="region_not_found")
        resolved = rates.resolve(region)
        if resolved is None:
            raise NotFound(f"unknown region {region!r}", slug="region_not_found")
        rate = resolved.rate
        provenance = {
            "rate_source": "region",
            "region_code": resolved.region.code if resolved.region else region,
            "tariff_id": resolved.tariff.id if resolved.tariff else None,
            "dataset_version": rates.version,
        }
    else:
        raise BadRequest(
            "no rate: PUT /api/v1/me/profile with region_code or rate_config, or pass ?region_code=",
            extra={"field": "region_code"},
        )
    rows = repo.list_devices(conn, account_id)
    try:
        hh = t.household_cost(rate, [_usage(r) for r in rows], include_fixed=include_fixed)
    except TariffInputError as exc:
        raise cost_service.bad(exc) from None
    m = cost_service.money
    devices = []
    for row, res in zip(rows, hh.devices, strict=True):
        d = {
            "id": row["id"],
            "name": row["name"],
            "mode": res.mode,
            "kwh_per_day": m(res.kwh_per_day),
            "daily_cost": m(res.energy.daily),
            "monthly_cost": m(res.energy.monthly),
            "annual_cost": m(res.energy.annual),
        }
        if res.tou_note:
            d["tou_note"] = res.tou_note
        devices.append(d)
    total = hh.total
    return {
        "currency": rate.currency,
        **provenance,
        "devices": devices,
        "total": {
            "kwh_per_day": m(hh.kwh_per_day),
            "daily_cost": m(total.daily),
            "monthly_cost": m(total.monthly),
            "annual_cost": m(total.annual),
        },
        "fixed_daily_charge": m(hh.fixed_daily) if include_fixed else None,
        "conventions": "annual = daily × 365; monthly = annual ÷ 12; block tiers apply to the household total",
    }


@dataclass(frozen=True, slots=True)
class Devices:
    """What the device routes need besides the request's connection: the device catalog and the tariff
    data (built once by the composition root)."""

    catalog: DeviceCatalog
    rates: cost_service.RatesProvider
