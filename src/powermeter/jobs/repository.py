"""Every SQL statement of the compute-job capability."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from powermeter.jobs.receipts import ProfileDoc
from powermeter.jobs.tables import receipt_profiles, receipt_trees, receipts

RECEIPT_COLUMNS = (
    "receipt_id", "account_id", "job_id", "tree_seq", "leaf_index", "profile_index", "kwh", "co2_grams",
    "geo_iso", "options",
)  # fmt: skip
_INSERT_SQL = (
    f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' for _ in RECEIPT_COLUMNS)})"
)


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A stored receipt and the inputs it was computed from (for the re-report comparison)."""

    account_id: str
    receipt_id: str
    job_id: str
    kwh: float
    co2_grams: float
    inputs: dict[str, Any]


_TREE_COLUMNS = (
    "tree_id", "account_id", "tree_size", "root_sha256", "issued_at", "key_id", "signature", "leaf_hashes",
    "profile_ids", "details", "created_at",
)  # fmt: skip
_TREE_SQL = (
    f"INSERT INTO receipt_trees ({', '.join(_TREE_COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' for _ in _TREE_COLUMNS)})"
)


_PG_TREE_SQL = _TREE_SQL.replace("?", "%s") + " RETURNING seq"
PG_SMALL_INSERT = 64  # receipts inserted in one statement, without a savepoint (PostgreSQL)


def insert_tree(conn: Connection, row: dict[str, Any]) -> int:
    """Insert a tree; returns its ``seq``. ``row['created_at']`` must already be in the driver's form
    (see ``service._db_datetime``)."""
    if conn.dialect.name == "sqlite":
        dbapi: Any = conn.connection.driver_connection
        cur = dbapi.execute(_TREE_SQL, tuple(row[c] for c in _TREE_COLUMNS))
        return int(cur.lastrowid)
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.driver_connection
        return int(raw.execute(_PG_TREE_SQL, tuple(row[c] for c in _TREE_COLUMNS)).fetchone()[0])
    return int(conn.execute(receipt_trees.insert().returning(receipt_trees.c.seq), row).scalar_one())


_TREE_SEQ = RECEIPT_COLUMNS.index("tree_seq")
_R_COLS = [c for c in RECEIPT_COLUMNS if c != "tree_seq"]
_R_SELECT = ", ".join("t.seq" if c == "tree_seq" else f"v.{c}" for c in RECEIPT_COLUMNS)


def insert_tree_and_receipts(conn: Connection, row: dict[str, Any], rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """PostgreSQL, at most ``PG_SMALL_INSERT`` receipts (a report): the tree and its receipts in one statement
    and one round trip (``rows`` in :data:`RECEIPT_COLUMNS` order, their ``tree_seq`` ignored). Returns the
    tree's ``seq`` and how many receipts were inserted: fewer than given means duplicates were skipped
    (``ON CONFLICT DO NOTHING``: no savepoint needed, the transaction stays usable), and the caller undoes
    the attempt."""
    one = "(" + ", ".join("%s" for _ in _R_COLS) + ")"
    sql = (
        f"WITH t AS ({_PG_TREE_SQL}), r AS (INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) "  # noqa: S608
        f"SELECT {_R_SELECT} FROM t, (VALUES {', '.join(one for _ in rows)}) AS v({', '.join(_R_COLS)}) "
        "ON CONFLICT DO NOTHING RETURNING 1) SELECT (SELECT seq FROM t), (SELECT count(*) FROM r)"
    )
    params = [row[c] for c in _TREE_COLUMNS] + [v for r in rows for k, v in enumerate(r) if k != _TREE_SEQ]
    raw: Any = conn.connection.driver_connection
    seq, inserted = raw.execute(sql, params).fetchone()
    return int(seq), int(inserted)


_COMPLETE_SQL = (
    "UPDATE receipt_trees SET tree_size = ?, root_sha256 = ?, signature = ?, leaf_hashes = ?, profile_ids = ?, "
    "details = ? WHERE seq = ?"
)


def complete_tree(
    conn: Connection,
    seq: int,
    tree_size: int,
    root_hex: str,
    signature: str,
    leaf_hashes: bytes,
    profile_ids: Sequence[str],
    details: bytes,
) -> None:
    """Write the head, leaves, profiles and details of a tree inserted empty (a SQLite group commit's
    receipt tree, ``service._seal_receipt_tree``)."""
    params = (tree_size, root_hex, signature, leaf_hashes, orjson.dumps(list(profile_ids)).decode(), details, seq)
    dbapi: Any = conn.connection.driver_connection  # sqlite3: only SQLite batches open trees
    dbapi.execute(_COMPLETE_SQL, params)


_seen_profiles: set[tuple[str, str]] = set()  # (database url, profile id) seen committed


def ensure_profiles(conn: Connection, profiles: Iterable[ProfileDoc]) -> None:
    """Store profiles not stored yet (they are content-addressed: same id, same body).

    Profiles already seen in the database by this process are skipped without a query: rows are
    never deleted, and an id is remembered only once a SELECT has returned it (so a rolled-back
    insert is never taken for a stored one).
    """
    url = str(conn.engine.url)
    wanted = {p.id: p for p in profiles if (url, p.id) not in _seen_profiles}
    if not wanted:
        return
    have = set(conn.execute(sa.select(receipt_profiles.c.id).where(receipt_profiles.c.id.in_(list(wanted)))).scalars())
    if len(_seen_profiles) > 100_000:
        _seen_profiles.clear()
    _seen_profiles.update((url, pid) for pid in have)
    missing = [{"id": p.id, "body": p.body} for pid, p in wanted.items() if pid not in have]
    if not missing:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(receipt_profiles).on_conflict_do_nothing(index_elements=["id"]), missing)
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(receipt_profiles).on_conflict_do_nothing(index_elements=["id"]), missing)
    else:  # pragma: no cover - other dialects are not supported by the project
        conn.execute(receipt_profiles.insert(), missing)


def insert_receipts(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Insert receipt rows (tuples in :data:`RECEIPT_COLUMNS` order) in one ``executemany``.

    A duplicate raises the driver's or SQLAlchemy's ``IntegrityError``. On SQLite the failed
    statement alone is undone and the transaction stays usable; on PostgreSQL the insert runs in a
    savepoint so the caller can still ask which job ids were duplicates.
    """
    if conn.dialect.name == "sqlite":
        # The driver's executemany directly: ~3× faster than SQLAlchemy's per-row parameter handling.
        dbapi: Any = conn.connection.driver_connection
        dbapi.executemany(_INSERT_SQL, rows)
        return
    if conn.dialect.name == "postgresql" and len(rows) <= PG_SMALL_INSERT:
        # the hot path (a report, a small batch): one statement and one round trip. A duplicate is skipped,
        # not raised, so no savepoint is needed to keep the transaction usable (each costs two round
        # trips and a subtransaction); a short count is then reported as the duplicate it is.
        one = "(" + ", ".join("%s" for _ in RECEIPT_COLUMNS) + ")"
        sql = (
            f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) VALUES "  # noqa: S608 - fixed columns
            + ", ".join(one for _ in rows)
            + " ON CONFLICT DO NOTHING"
        )
        raw: Any = conn.connection.driver_connection
        cur = raw.execute(sql, [v for r in rows for v in r])
        if cur.rowcount != len(rows):
            raise sa_exc.IntegrityError(sql, None, Exception(f"{len(rows) - cur.rowcount} receipts already stored"))
        return
    if conn.dialect.name == "postgresql":
        # a batch: one COPY (~4× faster than executemany for 10,000 rows), in a savepoint so that a
        # duplicate leaves the transaction usable for the caller's question (which job ids?)
        import psycopg

        raw = conn.connection.driver_connection
        with conn.begin_nested():
            try:
                with raw.cursor() as cur, cur.copy(_PG_COPY_SQL) as copy:
                    for r in rows:
                        copy.write_row(r)
            except psycopg.errors.UniqueViolation as e:
                raise sa_exc.IntegrityError(_PG_COPY_SQL, None, e) from e
        return
    with conn.begin_nested():
        conn.execute(receipts.insert(), [dict(zip(RECEIPT_COLUMNS, r, strict=True)) for r in rows])


_PG_COPY_SQL = f"COPY receipts ({', '.join(RECEIPT_COLUMNS)}) FROM STDIN"
# ``options`` as a literal NULL: sqlite3 binds a ``None`` parameter only after failing to find an
# adapter for it (~0.6 µs a row, 6 ms of a 10,000-row insert)
_INSERT_PLAIN_SQL = _INSERT_SQL.rsplit("?", 1)[0] + "NULL)"


def insert_plain_receipts(
    conn: Connection,
    account_id: str,
    tree_seq: int,
    receipt_ids: Sequence[str],
    job_ids: Sequence[str],
    profile_index: Sequence[int],
    kwh: Sequence[float],
    co2_grams: Sequence[float],
    geo_iso: Sequence[str],
) -> None:
    """Insert a tree's receipts without options, given column by column (leaf ``i`` is row ``i``): the
    same rows as :func:`insert_receipts`, with no row list built on SQLite (the driver's
    ``executemany`` reads the zipped columns). Raises as :func:`insert_receipts` on a duplicate."""
    n = len(receipt_ids)
    if not len(job_ids) == len(profile_index) == len(kwh) == len(co2_grams) == len(geo_iso) == n:
        raise ValueError("the receipt columns differ in length")
    if conn.dialect.name == "sqlite":
        dbapi: Any = conn.connection.driver_connection
        dbapi.executemany(
            _INSERT_PLAIN_SQL,
            zip(receipt_ids, repeat(account_id), job_ids, repeat(tree_seq), range(n), profile_index, kwh, co2_grams,
                geo_iso),
        )  # fmt: skip
        return
    rows = list(
        zip(receipt_ids, repeat(account_id), job_ids, repeat(tree_seq), range(n), profile_index, kwh, co2_grams,
            geo_iso, repeat(None))
    )  # fmt: skip
    insert_receipts(conn, rows)


def existing_job_ids(conn: Connection, account_id: str, job_ids: Sequence[str], *, other_than_tree: int) -> set[str]:
    """Which of ``job_ids`` already have a receipt in the account (outside the tree being written)."""
    found: set[str] = set()
    for i in range(0, len(job_ids), 500):
        chunk = list(job_ids[i : i + 500])
        q = sa.select(receipts.c.job_id).where(
            receipts.c.account_id == account_id, receipts.c.job_id.in_(chunk), receipts.c.tree_seq != other_than_tree
        )
        found.update(conn.execute(q).scalars())
    return found


def list_receipts(
    conn: Connection, account_id: str, *, job_id: str | None, limit: int, offset: int
) -> tuple[list[Any], int]:
    where = [receipts.c.account_id == account_id]
    if job_id is not None:
        where.append(receipts.c.job_id == job_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(receipts).where(*where)).scalar_one()
    q = (
        sa.select(
            receipts.c.receipt_id,
            receipts.c.job_id,
            receipts.c.kwh,
            receipts.c.co2_grams,
            receipt_trees.c.issued_at,
            receipts.c.seq,
            receipts.c.tree_seq,
        )
        .join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
        .where(*where)
        .order_by(receipts.c.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(q).all()), int(total)


def get_receipt(conn: Connection, account_id: str, receipt_id: str) -> Any:
    """The receipt row with its tree (size, root, signature, leaf hashes, profile ids)."""
    q = (
        sa.select(
            receipts,
            receipt_trees.c.tree_size,
            receipt_trees.c.root_sha256,
            receipt_trees.c.issued_at,
            receipt_trees.c.key_id,
            receipt_trees.c.signature,
            receipt_trees.c.leaf_hashes,
            receipt_trees.c.profile_ids,
            receipt_trees.c.details,
        )
        .join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
        .where(receipts.c.account_id == account_id, receipts.c.receipt_id == receipt_id)
    )
    return conn.execute(q).first()


def profile_body(conn: Connection, profile_id: str) -> str | None:
    q = sa.select(receipt_profiles.c.body).where(receipt_profiles.c.id == profile_id)
    body: str | None = conn.execute(q).scalar_one_or_none()
    return body


def delete_tree(conn: Connection, tree_seq: int, receipt_ids: Sequence[str]) -> None:
    """Undo a tree written in this transaction: its receipts (by their unique ids) and the tree."""
    for i in range(0, len(receipt_ids), 500):
        chunk = list(receipt_ids[i : i + 500])
        conn.execute(sa.delete(receipts).where(receipts.c.tree_seq == tree_seq, receipts.c.receipt_id.in_(chunk)))
    conn.execute(sa.delete(receipt_trees).where(receipt_trees.c.seq == tree_seq))


def stored_receipts(conn: Connection, account_id: str, job_ids: Sequence[str]) -> dict[str, StoredReceipt]:
    """The stored receipts of ``job_ids`` with the inputs they were computed from, by job id
    (:class:`StoredReceipt`); each tree's ``details`` blob is read once."""
    rows: list[Any] = []
    for i in range(0, len(job_ids), 500):
        chunk = list(job_ids[i : i + 500])
        q = sa.select(
            receipts.c.receipt_id, receipts.c.job_id, receipts.c.tree_seq, receipts.c.leaf_index, receipts.c.kwh,
            receipts.c.co2_grams, receipts.c.geo_iso, receipts.c.options,
        ).where(receipts.c.account_id == account_id, receipts.c.job_id.in_(chunk))  # fmt: skip
        rows.extend(conn.execute(q).all())
    details: dict[int, Any] = {}
    seqs = sorted({r.tree_seq for r in rows})
    for i in range(0, len(seqs), 500):
        q2 = sa.select(receipt_trees.c.seq, receipt_trees.c.details).where(receipt_trees.c.seq.in_(seqs[i : i + 500]))
        for seq, blob in conn.execute(q2).all():
            details[seq] = orjson.loads(blob)
    out: dict[str, StoredReceipt] = {}
    for r in rows:
        det = details[r.tree_seq]
        k = r.leaf_index
        inputs: dict[str, Any] = {
            "duration_minutes": det["duration_minutes"][k],
            "cpu_cores": det["cpu_cores"][k],
            "memory_gb": det["memory_gb"][k],
            "gpu_cores": det["gpu_cores"][k],
            "geo_iso": r.geo_iso,
        }
        if r.options:
            inputs.update(orjson.loads(r.options))
        extra = det.get("extra")
        if extra and str(k) in extra:
            inputs.update(extra[str(k)])
        out[r.job_id] = StoredReceipt(account_id, r.receipt_id, r.job_id, r.kwh, r.co2_grams, inputs)
    return out


# --- integrity checks (jobs/integrity.py): the stored rows as they were signed --------------------

_TREE_COLS = (
    receipt_trees.c.seq,
    receipt_trees.c.tree_id,
    receipt_trees.c.account_id,
    receipt_trees.c.tree_size,
    receipt_trees.c.root_sha256,
    receipt_trees.c.issued_at,
    receipt_trees.c.key_id,
    receipt_trees.c.signature,
    receipt_trees.c.leaf_hashes,
    receipt_trees.c.profile_ids,
    receipt_trees.c.details,
)
_RECEIPT_COLS = (
    receipts.c.seq,
    receipts.c.receipt_id,
    receipts.c.account_id,
    receipts.c.job_id,
    receipts.c.tree_seq,
    receipts.c.leaf_index,
    receipts.c.profile_index,
    receipts.c.kwh,
    receipts.c.co2_grams,
    receipts.c.geo_iso,
    receipts.c.options,
)


def receipts_with_trees(conn: Connection, seqs: Sequence[int]) -> tuple[list[Any], dict[int, Any]]:
    """The receipts of ``seqs`` (all columns a check needs) and their trees, by tree seq."""
    full = list(conn.execute(sa.select(*_RECEIPT_COLS).where(receipts.c.seq.in_(list(seqs)))).all())
    trees = {
        t.seq: t
        for t in conn.execute(
            sa.select(*_TREE_COLS).where(receipt_trees.c.seq.in_(sorted({r.tree_seq for r in full})))
        ).all()
    }
    return full, trees


def receipt_position(conn: Connection, account_id: str, receipt_id: str) -> Any:
    """``(seq, tree_seq)`` of the account's receipt, or None."""
    return conn.execute(
        sa.select(receipts.c.seq, receipts.c.tree_seq).where(
            receipts.c.account_id == account_id, receipts.c.receipt_id == receipt_id
        )
    ).first()


def _tree_range(col: Any, lo: int | None, hi: int | None) -> list[Any]:
    """``lo <= col < hi``, either bound optional."""
    where = []
    if lo is not None:
        where.append(col >= lo)
    if hi is not None:
        where.append(col < hi)
    return where


def count_receipts_of_trees(conn: Connection, lo: int | None, hi: int | None) -> int:
    q = sa.select(sa.func.count()).select_from(receipts).where(*_tree_range(receipts.c.tree_seq, lo, hi))
    return int(conn.execute(q).scalar_one())


def _pages(conn: Connection, q: Any, key: Any, size: int) -> Iterator[Any]:
    """Rows of ``q`` (ordered by ``key``) read in keyset pages: no cursor stays open between pages, so
    the connection can serve other statements meanwhile (a request's own connection)."""
    last: int | None = None
    while True:
        page = conn.execute(q.where(key > last).limit(size) if last is not None else q.limit(size)).all()
        yield from page
        if len(page) < size:
            return
        last = page[-1].seq


def _driver_rows(cursor: Any, size: int = 10_000) -> Iterator[tuple[Any, ...]]:
    while True:
        part = cursor.fetchmany(size)
        if not part:
            return
        yield from part


def integrity_trees(conn: Connection, lo: int | None, hi: int | None, *, stream: bool) -> Iterable[Any]:
    """Trees with ``lo <= seq < hi``, in seq order (streamed, or in keyset pages)."""
    q = sa.select(*_TREE_COLS).where(*_tree_range(receipt_trees.c.seq, lo, hi)).order_by(receipt_trees.c.seq)
    if stream:
        return conn.execution_options(stream_results=True, yield_per=256).execute(q)
    return _pages(conn, q, receipt_trees.c.seq, 256)


def integrity_receipts(conn: Connection, lo: int | None, hi: int | None, *, stream: bool) -> Iterable[Any]:
    """The receipts of the trees with ``lo <= tree_seq < hi``, in insertion order; columns as ``_RECEIPT_COLS``."""
    q = sa.select(*_RECEIPT_COLS).where(*_tree_range(receipts.c.tree_seq, lo, hi)).order_by(receipts.c.seq)
    if not stream:
        return _pages(conn, q, receipts.c.seq, 10_000)
    if conn.dialect.name == "sqlite":  # plain tuples from the driver: ~1 µs a row less than Row objects
        sql = str(q.compile(conn, compile_kwargs={"literal_binds": True}))
        driver = conn.connection.driver_connection
        if driver is None:  # pragma: no cover - a live connection always has its driver connection
            raise RuntimeError("the database connection is closed")
        return _driver_rows(driver.execute(sql))
    return conn.execution_options(stream_results=True, yield_per=10_000).execute(q)


def tree_seq_bounds(conn: Connection) -> tuple[int, int]:
    """The smallest and largest tree seq ((0, 0) when there is none)."""
    row = conn.execute(sa.select(sa.func.min(receipt_trees.c.seq), sa.func.max(receipt_trees.c.seq))).first()
    return (int(row[0]), int(row[1])) if row is not None and row[0] is not None else (0, 0)


# --- reads for the reports' completeness proof (powermeter.reports.ledger / legacy) ----------------------


def tree_seqs(conn: Connection, account_id: str) -> dict[str, int]:
    """tree_id → seq of every receipt tree of the account."""
    q = sa.select(receipt_trees.c.seq, receipt_trees.c.tree_id).where(receipt_trees.c.account_id == account_id)
    return {str(r[1]): int(r[0]) for r in conn.execute(q)}


def tree_row(conn: Connection, seq: int) -> Any:
    """The receipt tree row ``seq`` (every column), or ``None``."""
    return conn.execute(sa.select(receipt_trees).where(receipt_trees.c.seq == seq)).first()


def trees_of_account(conn: Connection, account_id: str) -> list[Any]:
    """Every receipt tree row of the account (every column)."""
    return list(conn.execute(sa.select(receipt_trees).where(receipt_trees.c.account_id == account_id)).all())


def tree_receipt_rows(conn: Connection, seq: int) -> list[Any]:
    """The receipt rows of tree ``seq`` (every column), by leaf index."""
    q = sa.select(receipts).where(receipts.c.tree_seq == seq).order_by(receipts.c.leaf_index)
    return list(conn.execute(q).all())


def profile_bodies(conn: Connection, profile_ids: Sequence[str]) -> dict[str, str]:
    """profile id → stored body of the given factor profiles (missing ones left out)."""
    q = sa.select(receipt_profiles.c.id, receipt_profiles.c.body).where(receipt_profiles.c.id.in_(list(profile_ids)))
    return {str(r[0]): str(r[1]) for r in conn.execute(q)}


def orphan_receipt_ids(conn: Connection, account_id: str) -> list[str]:
    """Receipt rows of the account whose tree does not exist or is another account's."""
    q = (
        sa.select(receipts.c.receipt_id)
        .select_from(receipts.outerjoin(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq))
        .where(receipts.c.account_id == account_id,
               sa.or_(receipt_trees.c.seq.is_(None), receipt_trees.c.account_id != account_id))
    )  # fmt: skip
    return [str(r[0]) for r in conn.execute(q)]
