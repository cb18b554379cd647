"""SQL of the cost capability: tariffs imported from OpenEI URDB exports."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.cost.tables import imported_tariffs


def import_stamp(conn: Connection) -> tuple[int, str]:
    """(row count, latest import time): changes whenever an import adds or replaces a tariff."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(imported_tariffs.c.imported_at)).select_from(imported_tariffs)
    ).one()
    return int(row[0] or 0), str(row[1] or "")


def imported_tariff_data(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(imported_tariffs.c.data).order_by(imported_tariffs.c.id)).all()
    return [json.loads(r.data) for r in rows]


def upsert_tariff(conn: Connection, tariff: dict[str, Any], source_file: str, now: datetime) -> bool:
    """Insert or replace one imported tariff; returns True when it replaced an earlier import."""
    data = json.dumps(tariff, sort_keys=True, ensure_ascii=False)
    existed = (
        conn.execute(sa.select(imported_tariffs.c.id).where(imported_tariffs.c.id == tariff["id"])).first() is not None
    )
    if existed:
        conn.execute(
            imported_tariffs.update()
            .where(imported_tariffs.c.id == tariff["id"])
            .values(region=tariff["region"], data=data, source_file=source_file, imported_at=now)
        )
    else:
        conn.execute(
            imported_tariffs.insert().values(
                id=tariff["id"], region=tariff["region"], data=data, source_file=source_file, imported_at=now
            )
        )
    return existed


def list_imported(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(
            imported_tariffs.c.id,
            imported_tariffs.c.region,
            imported_tariffs.c.source_file,
            imported_tariffs.c.imported_at,
        ).order_by(imported_tariffs.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]
