"""Every SQL statement of the reports capability: the account's reporting boundary (settings, sites'
instruments, closed periods), the read snapshot a report is built in, and retention's deletes. Rows of
other capabilities (receipts, inference records and their signatures, audit anchors) are read through
their own repositories (``powermeter.jobs.repository``, ``powermeter.inference.repository``,
``powermeter.audit.anchors``); retention (``reports.retention``), which must know the closed reporting
periods, deletes them here, through their tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.inference.tables import inference_daily, inference_details, inference_records, inference_signatures
from powermeter.infra.db import Database
from powermeter.jobs.tables import receipt_trees, receipts
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


# --- retention (powermeter.reports.retention) ------------------------------------------------------------


def earliest_closed_years(conn: Connection) -> dict[str, int]:
    """account id → the earliest reporting year it closed (accounts that closed none are left out)."""
    t = report_period_closes
    q = sa.select(t.c.account_id, sa.func.min(t.c.year)).group_by(t.c.account_id)
    return {str(r[0]): int(r[1]) for r in conn.execute(q)}


def trees_created_before(conn: Connection, before: datetime, after_seq: int, limit: int) -> list[Any]:
    """Up to ``limit`` receipt trees (seq, account_id, tree_size, created_at) made before ``before`` with a
    seq above ``after_seq``, by seq (keyset pages)."""
    t = receipt_trees
    q = (
        sa.select(t.c.seq, t.c.account_id, t.c.tree_size, t.c.created_at)
        .where(t.c.created_at < before, t.c.seq > after_seq)
        .order_by(t.c.seq)
        .limit(limit)
    )
    return list(conn.execute(q).all())


def delete_trees(conn: Connection, seqs: list[int]) -> int:
    """Delete the receipt trees ``seqs`` and their receipts (through ix_receipts_tree_seq_leaf_index);
    returns the number of receipts deleted."""
    n = int(conn.execute(sa.delete(receipts).where(receipts.c.tree_seq.in_(seqs))).rowcount or 0)
    conn.execute(sa.delete(receipt_trees).where(receipt_trees.c.seq.in_(seqs)))
    return n


def inference_before(conn: Connection, before: datetime, after_seq: int, limit: int) -> list[Any]:
    """Up to ``limit`` inference records (seq, id, account_id, log_date) booked before ``before`` with a
    seq above ``after_seq``, by seq (keyset pages)."""
    t = inference_records
    q = (
        sa.select(t.c.seq, t.c.id, t.c.account_id, t.c.log_date)
        .where(t.c.log_date < before, t.c.seq > after_seq)
        .order_by(t.c.seq)
        .limit(limit)
    )
    return list(conn.execute(q).all())


def delete_inference(conn: Connection, ids: list[str]) -> int:
    """Delete the inference records ``ids`` with their details and signatures; returns the records deleted."""
    conn.execute(sa.delete(inference_details).where(inference_details.c.id.in_(ids)))
    conn.execute(sa.delete(inference_signatures).where(inference_signatures.c.id.in_(ids)))
    return int(conn.execute(sa.delete(inference_records).where(inference_records.c.id.in_(ids))).rowcount or 0)


def delete_daily_before(conn: Connection, day: date, *, account_id: str | None = None,
                        other_than: list[str] | None = None) -> int:  # fmt: skip
    """Delete the inference rollup rows of days before ``day``: of ``account_id`` only, or of every account
    but ``other_than``."""
    t = inference_daily
    q = sa.delete(t).where(t.c.day < day)
    if account_id is not None:
        q = q.where(t.c.account_id == account_id)
    elif other_than:
        q = q.where(t.c.account_id.not_in(other_than))
    return int(conn.execute(q).rowcount or 0)
