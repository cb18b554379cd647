"""Every SQL statement of the reports capability.

Reports read two other capabilities' tables (compute-job ``receipts`` with their
``receipt_profiles``, and ``inference_records``); they write nothing of their own (the DOWNLOAD audit
entry goes through ``powermeter.audit.service``). The owners' modules expose no aggregate over a
period, so the queries are written here against their tables.

Aggregation runs in SQL: one GROUP BY per source, over the account's rows of the period, to a few
partial sums per month × profile/region × group. The coverage lists (record id + hash) are streamed
in batches in index order.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from powermeter.inference.tables import inference_details as inf_details
from powermeter.inference.tables import inference_records as inf
from powermeter.jobs.tables import receipt_profiles, receipt_trees, receipts

COVERAGE_BATCH = 20_000


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _month(conn: Connection, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``YYYY-MM`` of a UTC timestamp column."""
    if _is_pg(conn):
        return sa.func.to_char(sa.func.timezone("UTC", col), "YYYY-MM")
    # SQLite stores the UTC wall-clock time as text "YYYY-MM-DD HH:MM:SS.ffffff"
    return sa.func.substr(col, 1, 7)


def _json_text(conn: Connection, col: sa.ColumnElement[Any], member: str) -> sa.ColumnElement[Any]:
    """A top-level member of a JSON text column, as text (NULL when absent)."""
    if _is_pg(conn):
        return sa.cast(col, postgresql.JSONB).op("->>")(member)
    return sa.func.json_extract(col, f"$.{member}")


# --- compute-job receipts -----------------------------------------------------------------------------
#
# A receipt's time is its tree's: a request writes one tree (``created_at``, the request time) and its
# receipts, which point at it by ``tree_seq``. The account's receipts are scanned through
# ``ix_receipts_account_id_seq`` and each row finds its tree by integer primary key.


@dataclass(frozen=True, slots=True)
class JobAggregate:
    month: str
    geo_iso: str
    provider: str | None
    region: str | None
    own_hardware: str | None  # the raw value of options.own_hardware, when a receipt carries it
    model: str | None
    records: int
    energy_kwh: float
    co2_g: float
    last_seq: int  # the latest receipt of the partial sum (its profile gives the factors used)


def _jobs_in_period(account_id: str, start: datetime, end: datetime, exclude: Sequence[int] = ()) -> Any:
    """``receipts JOIN receipt_trees`` and the filter selecting the account's receipts in [start, end),
    minus the receipt rows ``exclude`` (``seq``: receipts that failed their integrity check)."""
    source = receipts.join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
    where: tuple[Any, ...] = (receipts.c.account_id == account_id, receipt_trees.c.created_at >= start,
                              receipt_trees.c.created_at < end)
    if exclude:
        # integers written inline: the coverage reader sends the compiled SQL to the driver itself
        where += (receipts.c.seq.notin_([sa.literal_column(str(int(x))) for x in exclude]),)
    return source, where


def job_aggregates(
    conn: Connection, account_id: str, start: datetime, end: datetime, *, with_model: bool,
    exclude: Sequence[int] = (),
) -> list[JobAggregate]:
    """Partial sums of the account's receipts in [start, end) per month × location as sent ×
    overrides (the ``options`` JSON text: provider, region, hardware models…).

    Grouping by the raw ``options`` text and parsing each distinct value once in Python costs less
    than extracting JSON members from every row (most receipts have no overrides at all)."""
    source, where = _jobs_in_period(account_id, start, end, exclude)
    keys: list[sa.ColumnElement[Any]] = [
        _month(conn, receipt_trees.c.created_at).label("month"), receipts.c.geo_iso, receipts.c.options,
    ]
    q = (
        sa.select(*keys, sa.func.count(), sa.func.sum(receipts.c.kwh), sa.func.sum(receipts.c.co2_grams),
                  sa.func.max(receipts.c.seq))
        .select_from(source)
        .where(*where)
        .group_by(*keys)
    )  # fmt: skip
    out = []
    parsed: dict[str, dict[str, Any]] = {}
    for row in conn.execute(q):
        month, geo_iso, options, n, kwh, co2, last = (row[i] for i in range(7))
        opts: dict[str, Any] = {}
        if options:
            if options not in parsed:
                value = orjson.loads(options)
                parsed[options] = value if isinstance(value, dict) else {}
            opts = parsed[options]

        def text(name: str, o: dict[str, Any] = opts) -> str | None:
            v = o.get(name)
            if v is None:
                return None
            return ("true" if v else "false") if isinstance(v, bool) else str(v)

        out.append(
            JobAggregate(
                month=str(month),
                geo_iso=str(geo_iso),
                provider=text("provider"),
                region=text("region"),
                own_hardware=text("own_hardware"),
                model=(text("gpu_model") or text("cpu_model")) if with_model else None,
                records=int(n),
                energy_kwh=float(kwh or 0.0),
                co2_g=float(co2 or 0.0),
                last_seq=int(last),
            )
        )
    return out


def job_profiles(conn: Connection, seqs: Sequence[int]) -> dict[int, str]:
    """The factor-profile body of each receipt ``seq`` (receipt → its tree's profile list → body)."""
    picked: dict[int, str] = {}
    for i in range(0, len(seqs), 500):
        chunk = list(seqs[i : i + 500])
        q = (
            sa.select(receipts.c.seq, receipts.c.profile_index, receipt_trees.c.profile_ids)
            .join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
            .where(receipts.c.seq.in_(chunk))
        )
        for seq, index, ids in conn.execute(q):
            picked[int(seq)] = str(orjson.loads(ids)[int(index)])
    bodies: dict[str, str] = {}
    wanted = sorted(set(picked.values()))
    for i in range(0, len(wanted), 500):
        q2 = sa.select(receipt_profiles.c.id, receipt_profiles.c.body).where(
            receipt_profiles.c.id.in_(wanted[i : i + 500])
        )
        bodies.update({str(r[0]): str(r[1]) for r in conn.execute(q2)})
    return {seq: bodies[pid] for seq, pid in picked.items() if pid in bodies}


def _tree_hexes(conn: Connection, where: Sequence[sa.ColumnElement[bool]]) -> dict[int, str]:
    """Tree seq → hex of its leaf-hash blob (32 bytes per leaf, in leaf order)."""
    q = sa.select(receipt_trees.c.seq, receipt_trees.c.leaf_hashes).where(*where)
    return {int(r[0]): bytes(r[1]).hex() for r in conn.execute(q)}


def _driver_batches(conn: Connection, q: sa.Select[Any], batch: int) -> Iterator[Sequence[Any]]:
    """Run ``q`` and read its rows in batches straight from the driver, skipping SQLAlchemy's
    per-row result processing (half the time of a million-row listing). Values come back as the
    driver gives them.

    SQLite: the statement runs through SQLAlchemy (which binds the parameters); the rows are read
    from its DBAPI cursor. PostgreSQL: the compiled statement runs on a psycopg server-side cursor
    (rows stream in batches instead of the whole result being loaded at once)."""
    if _is_pg(conn):
        compiled = q.compile(dialect=conn.dialect)
        dbapi: Any = conn.connection.driver_connection
        with dbapi.cursor(name=f"pm_report_{secrets.token_hex(6)}") as cur:
            cur.itersize = batch
            cur.execute(str(compiled), compiled.params)
            while rows := cur.fetchmany(batch):
                yield rows
        return
    result = conn.execute(q)
    try:
        cursor = result.cursor
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        result.close()


def iter_job_coverage(
    conn: Connection, account_id: str, start: datetime, end: datetime, batch: int = COVERAGE_BATCH,
    exclude: Sequence[int] = (),
) -> Iterator[list[str]]:
    """``receipt_id:leaf hash hex`` of the account's receipts in [start, end), in insertion order.

    The leaf hashes live in their tree's row (32 bytes per leaf, in leaf order): the period's trees
    are read once up front, so each receipt costs a dictionary lookup and a string slice."""
    hexes = _tree_hexes(conn, (receipt_trees.c.account_id == account_id, receipt_trees.c.created_at >= start,
                               receipt_trees.c.created_at < end))
    source, where = _jobs_in_period(account_id, start, end, exclude)
    q = (
        sa.select(receipts.c.receipt_id, receipts.c.tree_seq, receipts.c.leaf_index)
        .select_from(source)
        .where(*where)
        .order_by(receipts.c.seq)
    )
    for part in _driver_batches(conn, q, batch):
        yield [f"{rid}:{hexes[tree][i * 64 : i * 64 + 64]}" for rid, tree, i in part]


# --- inference records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InferenceAggregate:
    month: str
    final_provider: str
    final_region: str
    group: str | None  # provider (lower case) / model id / key id, by the report's grouping
    group_label: str | None
    records: int
    energy_wh: float
    co2_g: float
    water_ml: float
    last_seq: int  # the latest record of the partial sum (its details give the factors used)


def _inf_where(account_id: str, start: datetime, end: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return (inf.c.account_id == account_id, inf.c.log_date >= start, inf.c.log_date < end)


def inference_aggregates(
    conn: Connection, account_id: str, start: datetime, end: datetime, group_by: str
) -> list[InferenceAggregate]:
    """Partial sums of the account's inference records in [start, end) per month × site (× group)."""
    month = _month(conn, inf.c.log_date).label("month")
    keys: list[sa.ColumnElement[Any]] = [month, inf.c.final_provider, inf.c.final_region]
    label: sa.ColumnElement[Any] | None = None
    if group_by == "provider":
        keys.append(sa.func.lower(inf.c.provider).label("g"))
        label = sa.func.min(inf.c.provider)
    elif group_by == "model":
        keys.append(inf.c.model_id)
    elif group_by == "key":
        keys.append(inf.c.key_id)
        label = sa.func.min(inf.c.key_name + " (" + inf.c.masked_key + ")")
    cols: list[sa.ColumnElement[Any]] = [
        *keys,
        sa.func.count(),
        sa.func.sum(inf.c.energy_wh),
        sa.func.sum(inf.c.co2_grams),
        sa.func.sum(inf.c.water_ml),
        sa.func.max(inf.c.seq),
    ]
    if label is not None:
        cols.append(label)
    q = sa.select(*cols).where(*_inf_where(account_id, start, end)).group_by(*keys)
    out = []
    grouped = len(keys) == 4
    for r in conn.execute(q):
        n = len(keys)
        out.append(
            InferenceAggregate(
                month=str(r[0]),
                final_provider=str(r[1]),
                final_region=str(r[2]),
                group=str(r[3]) if grouped else None,
                group_label=str(r[n + 5]) if label is not None else None,
                records=int(r[n]),
                energy_wh=float(r[n + 1] or 0.0),
                co2_g=float(r[n + 2] or 0.0),
                water_ml=float(r[n + 3] or 0.0),
                last_seq=int(r[n + 4]),
            )
        )
    return out


def inference_details(conn: Connection, seqs: Sequence[int]) -> dict[int, str]:
    """The details JSON (factors, dataset versions) of each inference record ``seq``."""
    out: dict[int, str] = {}
    for i in range(0, len(seqs), 500):
        chunk = list(seqs[i : i + 500])
        q = (
            sa.select(inf.c.seq, inf_details.c.details)
            .join(inf_details, inf_details.c.id == inf.c.id)
            .where(inf.c.seq.in_(chunk))
        )
        out.update({int(r[0]): str(r[1]) for r in conn.execute(q)})
    return out


def iter_inference_coverage(
    conn: Connection, account_id: str, start: datetime, end: datetime, batch: int = COVERAGE_BATCH
) -> Iterator[Sequence[Any]]:
    """(id, log date, provider, model id, energy Wh, gCO2e, water mL) of the account's inference
    records in [start, end), in (log date, insertion) order, as the driver returns them: the log date is
    the stored text ``YYYY-MM-DD HH:MM:SS…`` (UTC) on SQLite, ``YYYY-MM-DDTHH:MM:SSZ`` on PostgreSQL."""
    log_date: sa.ColumnElement[Any] = inf.c.log_date
    if _is_pg(conn):  # formatted by the server: no datetime objects to build and format in Python
        log_date = sa.func.to_char(sa.func.timezone("UTC", inf.c.log_date), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    q = (
        sa.select(inf.c.id, log_date, inf.c.provider, inf.c.model_id, inf.c.energy_wh, inf.c.co2_grams,
                  inf.c.water_ml)
        .where(*_inf_where(account_id, start, end))
        .order_by(inf.c.log_date, inf.c.seq)
    )  # fmt: skip
    yield from _driver_batches(conn, q, batch)
