"""SQL of the devices capability: tracked devices and rate profiles, always scoped to one account."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.accounts.tables import accounts
from powermeter.devices.tables import user_devices, user_profiles

_D = user_devices.c


def _row(r: Any) -> dict[str, Any]:
    m = dict(r._mapping)
    m["schedule"] = None if m["schedule"] is None else json.loads(m["schedule"])
    m["metadata"] = json.loads(m.pop("meta"))
    return m


def list_devices(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(user_devices).where(_D.account_id == account_id).order_by(_D.created_at, _D.id)).all()
    return [_row(r) for r in rows]


def count_devices(conn: Connection, account_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(user_devices).where(_D.account_id == account_id)
    return int(conn.execute(q).scalar_one())


def get_device(conn: Connection, account_id: str, device_id: str) -> dict[str, Any] | None:
    r = conn.execute(sa.select(user_devices).where(_D.account_id == account_id, _D.id == device_id)).first()
    return None if r is None else _row(r)


def insert_device(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(user_devices.insert().values(**_encode(values)))


def update_device(conn: Connection, account_id: str, device_id: str, values: dict[str, Any]) -> None:
    conn.execute(user_devices.update().where(_D.account_id == account_id, _D.id == device_id).values(**_encode(values)))


def delete_device(conn: Connection, account_id: str, device_id: str) -> bool:
    res = conn.execute(user_devices.delete().where(_D.account_id == account_id, _D.id == device_id))
    return bool(res.rowcount)


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "schedule" in out:
        out["schedule"] = None if out["schedule"] is None else json.dumps(out["schedule"])
    if "metadata" in out:
        out["meta"] = json.dumps(out.pop("metadata"), sort_keys=True, ensure_ascii=False)
    return out


def get_profile(conn: Connection, account_id: str) -> dict[str, Any] | None:
    r = conn.execute(
        sa.select(
            user_profiles.c.region_code,
            user_profiles.c.rate_config,
            user_profiles.c.updated_at,
            accounts.c.created_at,
        )
        .select_from(user_profiles.join(accounts, accounts.c.id == user_profiles.c.account_id))
        .where(user_profiles.c.account_id == account_id)
    ).first()
    if r is None:
        return None
    m = dict(r._mapping)
    m["rate_config"] = None if m["rate_config"] is None else json.loads(m["rate_config"])
    return m


def upsert_profile(
    conn: Connection, account_id: str, region_code: str | None, rate_config: dict[str, Any] | None, now: datetime
) -> None:
    cfg = None if rate_config is None else json.dumps(rate_config, sort_keys=True, ensure_ascii=False)
    res = conn.execute(
        user_profiles.update()
        .where(user_profiles.c.account_id == account_id)
        .values(region_code=region_code, rate_config=cfg, updated_at=now)
    )
    if not res.rowcount:
        conn.execute(
            user_profiles.insert().values(
                account_id=account_id, region_code=region_code, rate_config=cfg, created_at=now, updated_at=now
            )
        )
