"""Every SQL statement of the AI-inference capability (portable: SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from powermeter.inference.tables import inference_daily as d
from powermeter.inference.tables import inference_details as det
from powermeter.inference.tables import inference_records as t
from powermeter.inference.tables import inference_signatures
from powermeter.infra.db.unit_of_work import HotRows, defer_row, hot_rows

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
    t.c.source,
    t.c.tag,
)

_INSERT = t.insert()
_INSERT_DETAILS = det.insert()
_ROLLUP_KEY = ("account_id", "day", "key_name", "provider", "model_id")
_ROLLUP_SUMS = ("requests", "input_tokens", "output_tokens", "energy_wh", "co2_grams", "water_ml", "tree_days")
_UPSERTS: dict[str, Any] = {}


def _upsert(conn: Connection) -> Any:
    """INSERT … ON CONFLICT DO UPDATE adding to the day's sums (SQLite ≥ 3.24 and PostgreSQL)."""
    name = conn.dialect.name
    stmt = _UPSERTS.get(name)
    if stmt is None:
        ins = postgresql.insert(d) if name == "postgresql" else sqlite.insert(d)
        stmt = ins.on_conflict_do_update(
            index_elements=[d.c[k] for k in _ROLLUP_KEY],
            set_={k: d.c[k] + ins.excluded[k] for k in _ROLLUP_SUMS},
        )
        _UPSERTS[name] = stmt
    return stmt


def _day(ts: datetime) -> date:
    return (ts.astimezone(UTC) if ts.tzinfo is not None else ts).date()


def _rollup(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    acc: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["account_id"], _day(r["log_date"]), r["key_name"], r["provider"], r["model_id"])
        a = acc.get(key)
        if a is None:
            a = acc[key] = dict(zip(_ROLLUP_KEY, key, strict=True)) | dict.fromkeys(_ROLLUP_SUMS, 0)
        a["requests"] += 1
        for k in _ROLLUP_SUMS[1:]:
            a[k] += r[k]
    return list(acc.values())


_RECORD_COLS = tuple(c.name for c in t.columns if c.name != "seq")
_LOG_DATE = _RECORD_COLS.index("log_date")
# column names come from the table definition, never from input
_SQLITE_INSERT = (
    f"INSERT INTO inference_records ({', '.join(_RECORD_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_RECORD_COLS))})"
)
_SQLITE_INSERT_DETAILS = "INSERT INTO inference_details (id, details) VALUES (?, ?)"
_SQLITE_ROLLUP = (
    f"INSERT INTO inference_daily ({', '.join(_ROLLUP_KEY + _ROLLUP_SUMS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(_ROLLUP_KEY) + len(_ROLLUP_SUMS)))}) "
    f"ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{k} = {k} + excluded.{k}" for k in _ROLLUP_SUMS)
)


_SQLITE_ROLLUP_GET = (
    f"SELECT {', '.join(_ROLLUP_SUMS)} FROM inference_daily WHERE "  # noqa: S608
    + " AND ".join(f"{k} = ?" for k in _ROLLUP_KEY)
)
_SQLITE_ROLLUP_SET = (
    f"INSERT INTO inference_daily ({', '.join(_ROLLUP_KEY + _ROLLUP_SUMS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(_ROLLUP_KEY) + len(_ROLLUP_SUMS)))}) "
    f"ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET " + ", ".join(f"{k} = excluded.{k}" for k in _ROLLUP_SUMS)
)


def _hot_rollup(hot: HotRows, raw: Any, vals: list[Any]) -> None:
    """The day's rollup row in a SQLite hot-rows batch (infra/db/unit_of_work.py): read once per batch,
    summed in memory in request order (the same additions, in the same order, as the upsert would make,
    so the stored sums are bit for bit the same) and written once before the COMMIT."""
    n = len(_ROLLUP_KEY)
    key: tuple[str, ...] = ("1rollup", *vals[:n])  # five strings (account, ISO day, key name, provider, model)
    current: list[Any] | None = hot.get(key)
    if current is None:
        stored = raw.execute(_SQLITE_ROLLUP_GET, vals[:n]).fetchone()
        current = None if stored is None else [*vals[:n], *stored]
    new = vals if current is None else [*vals[:n], *(a + b for a, b in zip(current[n:], vals[n:], strict=True))]
    hot.put(key, new)
    hot.last(key, lambda c: _driver(c).execute(_SQLITE_ROLLUP_SET, new))


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _sqlite_ts(ts: datetime) -> str:
    """SQLAlchemy's storage format for DateTime on SQLite (naive UTC text), so both paths agree."""
    return (ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts).isoformat(sep=" ", timespec="microseconds")


_PG_INSERT = (
    f"INSERT INTO inference_records ({', '.join(_RECORD_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_RECORD_COLS))})"
)
_PG_INSERT_DETAILS = "INSERT INTO inference_details (id, details) VALUES (%s, %s)"
# a lane's deferred new rows sort before its hot rows ("1rollup", "2audit", …), parents before children
_NEW_RECORD = ("0new", "1record")
_NEW_DETAILS = ("0new", "2details")
_NEW_SIGNATURE = ("0new", "3signature")
_PG_ROLLUP = (
    f"INSERT INTO inference_daily ({', '.join(_ROLLUP_KEY + _ROLLUP_SUMS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * (len(_ROLLUP_KEY) + len(_ROLLUP_SUMS)))}) "
    f"ON CONFLICT ({', '.join(_ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{k} = inference_daily.{k} + excluded.{k}" for k in _ROLLUP_SUMS)
)


def insert_record(conn: Connection, row: dict[str, Any], details: str, signature: dict[str, Any] | None = None) -> None:
    """Store one record, its details and its ``signature`` row (``inference_signatures``) when given, and add
    it to its day's rollup (same transaction). Inside a group commit (a SQLite hot-rows batch, a PostgreSQL lane)
    a record without an idempotency key, its details and signature are written with the batch's others just
    before its COMMIT, one ``executemany`` per statement, and so is the rollup; a record with a key is inserted at
    once (a repeated key must fail its own request). Otherwise, on PostgreSQL, the three rows go in one round trip
    (psycopg's pipeline mode)."""
    if conn.dialect.name == "sqlite":
        # the per-request path talks to the driver directly (~5 µs a statement instead of ~50 µs)
        raw: Any = conn.connection.driver_connection
        values = [row[c] for c in _RECORD_COLS]
        values[_LOG_DATE] = _sqlite_ts(row["log_date"])
        hot = hot_rows(conn)
        if hot is not None and row["idempotency_key"] is None:
            # a hot-rows batch writes the three rows with its others before its COMMIT (HotRows.insert):
            # their ids are fresh, and without an idempotency key no unit of the batch looks them up
            hot.insert(_SQLITE_INSERT, values)
            hot.insert(_SQLITE_INSERT_DETAILS, (row["id"], details))
            if signature is not None:
                hot.insert(_SQLITE_INSERT_SIGNATURE, [signature[c] for c in _SIGNATURE_COLS])
        else:
            raw.execute(_SQLITE_INSERT, values)
            raw.execute(_SQLITE_INSERT_DETAILS, (row["id"], details))
            if signature is not None:
                raw.execute(_SQLITE_INSERT_SIGNATURE, [signature[c] for c in _SIGNATURE_COLS])
        # the row's own rollup line: _rollup((row,)) without its dictionaries (0 + x: the same additions)
        vals = [
            row["account_id"],
            _day(row["log_date"]).isoformat(),
            row["key_name"],
            row["provider"],
            row["model_id"],
            1,
            *[0 + row[k] for k in _ROLLUP_SUMS[1:]],
        ]
        if hot is None:
            raw.execute(_SQLITE_ROLLUP, vals)
        else:
            _hot_rollup(hot, raw, vals)
        return
    if conn.dialect.name != "postgresql":  # pragma: no cover - only SQLite and PostgreSQL are supported
        conn.execute(_INSERT, row)
        conn.execute(_INSERT_DETAILS, {"id": row["id"], "details": details})
        if signature is not None:
            conn.execute(inference_signatures.insert(), signature)
        conn.execute(_upsert(conn), _rollup((row,)))
        return
    raw = _driver(conn)
    values = [row[c] for c in _RECORD_COLS]
    if row["idempotency_key"] is None and defer_row(conn, _NEW_RECORD, _PG_INSERT, values):
        # in a group-commit lane the batch's new records go in one executemany per statement before its
        # COMMIT (first in its order: records, then details and signatures), as a SQLite batch does: fresh ids,
        # and without an idempotency key no request of the batch looks them up
        defer_row(conn, _NEW_DETAILS, _PG_INSERT_DETAILS, (row["id"], details))
        if signature is not None:
            defer_row(conn, _NEW_SIGNATURE, _PG_INSERT_SIGNATURE, [signature[c] for c in _SIGNATURE_COLS])
    else:
        with raw.pipeline(), raw.cursor() as cur:
            cur.execute(_PG_INSERT, values)
            cur.execute(_PG_INSERT_DETAILS, (row["id"], details))
            if signature is not None:
                cur.execute(_PG_INSERT_SIGNATURE, [signature[c] for c in _SIGNATURE_COLS])
    for r in _rollup((row,)):
        vals = [r[k] for k in _ROLLUP_KEY + _ROLLUP_SUMS]
        # the day's rollup row is hot (every request of the account and model): in a PostgreSQL lane it is
        # written just before the batch's COMMIT, in the global order of hot rows, with the batch's other
        # additions to it in one executemany (infra/db/unit_of_work.py)
        if not defer_row(conn, ("1rollup", *(str(v) for v in vals[: len(_ROLLUP_KEY)])), _PG_ROLLUP, vals):
            raw.execute(_PG_ROLLUP, vals)


def insert_records(conn: Connection, rows: Sequence[dict[str, Any]], details: Sequence[str] | None = None) -> None:
    """Bulk insert (benchmarks, imports): one ``executemany`` each for records, details and rollups."""
    if rows:
        conn.execute(_INSERT, list(rows))
        if details is not None:
            conn.execute(_INSERT_DETAILS, [{"id": r["id"], "details": x} for r, x in zip(rows, details, strict=True)])
        conn.execute(_upsert(conn), _rollup(rows))


def find_by_idempotency_keys(
    conn: Connection, account_id: str, keys: Sequence[str]
) -> list[tuple[str, str, float, float, float]]:
    """(idempotency key, id, Wh, gCO2e, mL) of the account's records stored under any of ``keys``."""
    if not keys:
        return []
    q = sa.select(t.c.idempotency_key, t.c.id, t.c.energy_wh, t.c.co2_grams, t.c.water_ml).where(
        t.c.account_id == account_id, t.c.idempotency_key.in_(list(keys))
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(q)]


def get_details(conn: Connection, record_id: str) -> str | None:
    return conn.execute(sa.select(det.c.details).where(det.c.id == record_id)).scalar_one_or_none()


def count_history_days(
    conn: Connection, account_id: str, start: date | None, end_exclusive: date | None, key_name: str | None
) -> int:
    """``count_history`` for whole-day bounds, from the rollup."""
    clauses: list[sa.ColumnElement[bool]] = [d.c.account_id == account_id]
    if key_name is not None:
        clauses.append(d.c.key_name == key_name)
    if start is not None:
        clauses.append(d.c.day >= start)
    if end_exclusive is not None:
        clauses.append(d.c.day < end_exclusive)
    q = sa.select(sa.func.coalesce(sa.func.sum(d.c.requests), 0)).where(*clauses)
    return int(conn.execute(q).scalar_one())


def _where(
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    source: str | None = None,
    tag: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = [t.c.account_id == account_id]
    if key_name is not None:
        clauses.append(t.c.key_name == key_name)
    if source is not None:
        clauses.append(t.c.source == source)
    if tag is not None:
        clauses.append(t.c.tag == tag)
    if start is not None:
        clauses.append(t.c.log_date >= start)
    if end_exclusive is not None:
        clauses.append(t.c.log_date < end_exclusive)
    return clauses


def count_history(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    source: str | None = None,
    tag: str | None = None,
) -> int:
    where = _where(account_id, start, end_exclusive, key_name, source, tag)
    q = sa.select(sa.func.count()).select_from(t).where(*where)
    return int(conn.execute(q).scalar_one())


def _history_query(
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    limit: int,
    offset: int,
    source: str | None = None,
    tag: str | None = None,
) -> sa.Select[Any]:
    return (
        sa.select(*HISTORY_COLUMNS)
        .where(*_where(account_id, start, end_exclusive, key_name, source, tag))
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
    source: str | None = None,
    tag: str | None = None,
) -> Sequence[Row[Any]]:
    """Newest first."""
    q = _history_query(account_id, start, end_exclusive, key_name, limit, offset, source, tag)
    return conn.execute(q).all()


def iter_history(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    key_name: str | None,
    limit: int,
    offset: int,
    batch: int = 2000,
    source: str | None = None,
    tag: str | None = None,
) -> Iterator[Sequence[Row[Any]]]:
    """The same rows as :func:`history_page`, fetched in batches from a server-side cursor."""
    q = _history_query(account_id, start, end_exclusive, key_name, limit, offset, source, tag)
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
    source: str | None = None,
    tag: str | None = None,
) -> Sequence[Row[Any]]:
    """(key, requests, input tokens, output tokens, Wh, gCO2e, mL, tree-days) per group, from the records."""
    key: sa.ColumnElement[Any]
    if group_by == "model":
        key = t.c.model_id
    elif group_by == "provider":
        key = t.c.provider
    elif group_by == "key":
        key = t.c.key_name
    elif group_by == "day":
        key = _day_expr(conn)
    elif group_by == "tag":
        key = t.c.tag
    elif group_by == "source":
        key = t.c.source
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
        .where(*_where(account_id, start, end_exclusive, None, source, tag))
        .group_by(k)
        .order_by(k)
    )
    return conn.execute(q).all()


def summary_days(
    conn: Connection, account_id: str, start: date | None, end_exclusive: date | None, group_by: str
) -> Sequence[Row[Any]]:
    """:func:`summary` for whole-day bounds, from the rollup."""
    key = {"model": d.c.model_id, "provider": d.c.provider, "key": d.c.key_name, "day": d.c.day}[group_by]
    k = key.label("k")
    clauses: list[sa.ColumnElement[bool]] = [d.c.account_id == account_id]
    if start is not None:
        clauses.append(d.c.day >= start)
    if end_exclusive is not None:
        clauses.append(d.c.day < end_exclusive)
    q = sa.select(k, *(sa.func.sum(d.c[c]) for c in _ROLLUP_SUMS)).where(*clauses).group_by(k).order_by(k)
    return conn.execute(q).all()


_SIGNATURE_COLS = ("id", "account_id", "application", "received_at", "leaf_sha256", "key_id", "signature")
_PG_INSERT_SIGNATURE = (
    f"INSERT INTO inference_signatures ({', '.join(_SIGNATURE_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_SIGNATURE_COLS))})"
)
_SQLITE_INSERT_SIGNATURE = (
    f"INSERT INTO inference_signatures ({', '.join(_SIGNATURE_COLS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_SIGNATURE_COLS))})"
)


def insert_signatures(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Signature rows, each its values in ``_SIGNATURE_COLS`` order (a batch tree's: ``seal_trees``)."""
    raw = _driver(conn)
    if conn.dialect.name == "sqlite":
        raw.executemany(_SQLITE_INSERT_SIGNATURE, rows)
    else:  # psycopg pipelines an executemany: one round trip
        with raw.cursor() as cur:
            cur.executemany(_PG_INSERT_SIGNATURE, rows)


def insert_signature(conn: Connection, **row: Any) -> None:
    """The signature of one record (``inference_signatures``), written in the record's transaction."""
    if conn.dialect.name == "sqlite":
        # per-request path: the driver directly, as insert_record (a statement built with .values()
        # per call cost a compile-cache lookup of ~100 µs)
        raw: Any = conn.connection.driver_connection
        raw.execute(_SQLITE_INSERT_SIGNATURE, [row[c] for c in _SIGNATURE_COLS])
        return
    conn.execute(inference_signatures.insert(), row)


# --- reads for the reports' completeness proof (powermeter.reports.ledger / legacy) ----------------------


def record_ids_between(conn: Connection, account_id: str, start: datetime, end: datetime) -> list[str]:
    """Ids of the account's records booked in [start, end)."""
    q = sa.select(t.c.id).where(t.c.account_id == account_id, t.c.log_date >= start, t.c.log_date < end)
    return [str(r[0]) for r in conn.execute(q)]


def record_ids(conn: Connection, account_id: str) -> list[str]:
    """Ids of every record of the account."""
    return [str(r[0]) for r in conn.execute(sa.select(t.c.id).where(t.c.account_id == account_id))]


def records_with_details(conn: Connection, account_id: str, ids: Sequence[str]) -> list[Row[Any]]:
    """The account's records ``ids`` (every column) with their ``details`` (``None`` when the details row
    is missing)."""
    q = (
        sa.select(t, det.c.details)
        .select_from(t.outerjoin(det, det.c.id == t.c.id))
        .where(t.c.id.in_(list(ids)), t.c.account_id == account_id)
    )
    return list(conn.execute(q).all())


def signatures_of(conn: Connection, ids: Sequence[str]) -> dict[str, Any]:
    """record id → its signature row (application, received_at, leaf_sha256, key_id, signature)."""
    s = inference_signatures
    q = sa.select(s.c.id, s.c.application, s.c.received_at, s.c.leaf_sha256, s.c.key_id, s.c.signature).where(
        s.c.id.in_(list(ids))
    )
    return {str(r.id): r for r in conn.execute(q)}


def signed_ids(conn: Connection, account_id: str) -> set[str]:
    """Ids of the account's signed records."""
    s = inference_signatures
    return {str(r[0]) for r in conn.execute(sa.select(s.c.id).where(s.c.account_id == account_id))}
