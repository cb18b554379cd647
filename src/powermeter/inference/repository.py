"""Every SQL statement of the AI-inference capability (portable: SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from powermeter.inference.tables import inference_records as t

HISTORY_COLUMNS = (
    t.c.id,
    t.c.log_date,
    t.c.key_name,
    t.c.masked_key,
    t.c.provider,
    t.c.model,
    t.c.input_tokens,
    t.c.output_tokens,
    t.c.energy_wh,
    t.c.co2_grams,
    t.c.water_ml,
    t.c.tree_days,
    t.c.model_id,
    t.c.calculation_method,
    t.c.final_region,
)

_INSERT = t.insert()


def insert_record(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(_INSERT, row)


def insert_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk insert (benchmarks, imports): one ``executemany``."""
    if rows:
        conn.execute(_INSERT, list(rows))


def _where(
    account_id: str, start: datetime | None, end_exclusive: datetime | None, key_name: str | None
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = [t.c.account_id == account_id]
    if key_name is not None:
        clauses.append(t.c.key_name == key_name)
    if start is not None:
        clauses.append(t.c.log_date >= start)
    if end_exclusive is not None:
        clauses.append(t.c.log_date < end_exclusive)
    return clauses


def count_history(
    conn: Connection, account_id: str, start: datetime | None, end_exclusive: datetime | None, key_name: str | None
) -> int:
    q = sa.select(sa.func.count()).select_from(t).where(*_where(account_id, start, end_exclusive, key_name))
    return int(conn.execute(q).scalar_one())


def _history_query(
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    limit: int,
    offset: int,
) -> sa.Select[Any]:
    return (
        sa.select(*HISTORY_COLUMNS)
        .where(*_where(account_id, start, end_exclusive, key_name))
        .order_by(t.c.log_date.desc(), t.c.seq.desc())
        .limit(limit)
        .offset(offset)
    )


def history_page(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    limit: int,
    offset: int,
) -> Sequence[Row[Any]]:
    """Newest first."""
    return conn.execute(_history_query(account_id, start, end_exclusive, key_name, limit, offset)).all()


def iter_history(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    limit: int,
    offset: int,
    batch: int = 2000,
) -> Iterator[Sequence[Row[Any]]]:
    """The same rows as :func:`history_page`, fetched in batches from a server-side cursor."""
    q = _history_query(account_id, start, end_exclusive, key_name, limit, offset)
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(q)
    try:
        yield from result.partitions(batch)
    finally:
        result.close()


def _day_expr(conn: Connection) -> sa.ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", t.c.log_date), sa.Date)
    return sa.func.substr(t.c.log_date, 1, 10)  # SQLite stores UTC wall-clock "YYYY-MM-DD HH:MM:SS…"


def summary(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    group_by: str,
) -> Sequence[Row[Any]]:
    """(key, requests, input tokens, output tokens, Wh, gCO2e, mL, tree-days) per group."""
    key: sa.ColumnElement[Any]
    if group_by == "model":
        key = t.c.model_id
    elif group_by == "provider":
        key = t.c.provider
    elif group_by == "key":
        key = t.c.key_name
    elif group_by == "day":
        key = _day_expr(conn)
    else:  # pragma: no cover - the router validates
        raise ValueError(group_by)
    k = key.label("k")
    q = (
        sa.select(
            k,
            sa.func.count(),
            sa.func.sum(t.c.input_tokens),
            sa.func.sum(t.c.output_tokens),
            sa.func.sum(t.c.energy_wh),
            sa.func.sum(t.c.co2_grams),
            sa.func.sum(t.c.water_ml),
            sa.func.sum(t.c.tree_days),
        )
        .where(*_where(account_id, start, end_exclusive, None))
        .group_by(k)
        .order_by(k)
    )
    return conn.execute(q).all()
