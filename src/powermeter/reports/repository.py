"""Every SQL statement of the reports capability: the account's reporting boundary (settings, sites'
instruments, closed periods) and the read snapshot a report is built in. Rows of other capabilities
(receipts, inference records and their signatures, audit anchors) are read through their own
repositories (``powermeter.jobs.repository``, ``powermeter.inference.repository``,
``powermeter.audit.anchors``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.infra.db import Database
from powermeter.reports.tables import report_period_closes, report_settings, report_sites


@contextmanager
def snapshot(db: Database, conn: Connection) -> Iterator[Connection]:
    """A connection whose reads all see one snapshot of the database, from the caller's ``db``.

    SQLite: the caller's connection (its ``BEGIN IMMEDIATE`` transaction keeps every writer out until
    it commits). PostgreSQL: a connection of the caller's engine in its own REPEATABLE READ, READ ONLY
    transaction, returned to the pool on exit (no engine is created here)."""
    if conn.dialect.name != "postgresql":
        yield conn
        return
    with db.engine.connect() as raw:
        rconn = raw.execution_options(isolation_level="REPEATABLE READ")
        with rconn.begin():
            rconn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield rconn


# --- boundary -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoundaryRows:
    settings: Any  # report_settings row or None
    sites: list[tuple[str, str]]  # (site, body)
    closes: list[tuple[int, Any]]  # (year, closed_at)


def boundary_rows(conn: Connection, account_id: str) -> BoundaryRows:
    s = conn.execute(sa.select(report_settings).where(report_settings.c.account_id == account_id)).first()
    sites = [
        (str(r.site), str(r.body))
        for r in conn.execute(sa.select(report_sites).where(report_sites.c.account_id == account_id))
    ]
    t = report_period_closes
    closes = [(int(r.year), r.closed_at) for r in conn.execute(sa.select(t).where(t.c.account_id == account_id))]
    return BoundaryRows(s, sites, closes)


def replace_settings(conn: Connection, account_id: str, approach: str, entity: str | None, now: datetime) -> None:
    t = report_settings
    conn.execute(t.delete().where(t.c.account_id == account_id))
    conn.execute(
        t.insert().values(account_id=account_id, consolidation_approach=approach, entity=entity, updated_at=now)
    )


def replace_site(conn: Connection, account_id: str, site: str, body: str, now: datetime) -> None:
    t = report_sites
    conn.execute(t.delete().where(t.c.account_id == account_id, t.c.site == site))
    conn.execute(t.insert().values(account_id=account_id, site=site, body=body, updated_at=now))


def delete_site(conn: Connection, account_id: str, site: str) -> bool:
    t = report_sites
    return bool(conn.execute(t.delete().where(t.c.account_id == account_id, t.c.site == site)).rowcount)


def period_closed_at(conn: Connection, account_id: str, year: int) -> Any:
    t = report_period_closes
    row = conn.execute(sa.select(t.c.closed_at).where(t.c.account_id == account_id, t.c.year == year)).first()
    return None if row is None else row[0]


def insert_period_close(conn: Connection, account_id: str, year: int, now: datetime) -> None:
    conn.execute(report_period_closes.insert().values(account_id=account_id, year=year, closed_at=now))
