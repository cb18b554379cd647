"""Every SQL statement of the audit log. Entries and checkpoints are only inserted, never updated."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from powermeter.accounts.tables import accounts
from powermeter.audit.tables import audit_chain_heads, audit_checkpoints, audit_entries
from powermeter.infra.db.unit_of_work import HotRows
from powermeter.methodology.audit_chain import GENESIS_HASH, AuditEntry, Checkpoint

heads = audit_chain_heads
entries = audit_entries
checkpoints = audit_checkpoints

# The row layout verify_chain reads (methodology.audit_chain.ROW_FIELDS).
ROW_COLUMNS = (
    entries.c.seq,
    entries.c.id,
    entries.c.action_type,
    entries.c.receipt_id,
    entries.c.actor_key_id,
    entries.c.actor_masked_key,
    entries.c.details,
    entries.c.timestamp,
    entries.c.prev_hash,
    entries.c.entry_hash,
)

# The append path runs on every audited request, so it uses the driver directly with fixed SQL
# (psycopg prepares repeated statements on the server): 2 round trips on PostgreSQL, 3 in-process
# statements on SQLite. Everything else goes through SQLAlchemy Core.
_PG_LOCK_HEAD = "SELECT seq, head_hash, checkpoints FROM audit_chain_heads WHERE account_id = %s FOR UPDATE"
_PG_APPEND = (
    "WITH e AS (INSERT INTO audit_entries (account_id, seq, id, action_type, receipt_id, actor_key_id, "
    'actor_masked_key, details, "timestamp", prev_hash, entry_hash) '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)) "
    "UPDATE audit_chain_heads SET seq = %s, head_hash = %s, updated_at = %s WHERE account_id = %s"
)
_LITE_LOCK_HEAD = "SELECT seq, head_hash, checkpoints FROM audit_chain_heads WHERE account_id = ?"
_LITE_INSERT = (
    "INSERT INTO audit_entries (account_id, seq, id, action_type, receipt_id, actor_key_id, "
    'actor_masked_key, details, "timestamp", prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
)
_LITE_ADVANCE = "UPDATE audit_chain_heads SET seq = ?, head_hash = ?, updated_at = ? WHERE account_id = ?"


def _driver(conn: Connection) -> Any:
    """The DBAPI connection under ``conn``: statements on it run in ``conn``'s transaction."""
    return conn.connection.dbapi_connection


def _sqlite_time(now: datetime) -> str:
    """How SQLAlchemy stores a DateTime on SQLite (naive UTC, microseconds: ``%Y-%m-%d %H:%M:%S.%f``)."""
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    head_hash: str
    checkpoints: int


def _head(row: Any) -> Head | None:
    return None if row is None else Head(int(row[0]), str(row[1]), int(row[2]))


def lock_head(conn: Connection, account_id: str) -> Head | None:
    """The account's chain head ``(seq, head_hash, checkpoints)``, locked until the transaction ends.

    On PostgreSQL this is ``SELECT … FOR UPDATE`` on the head row: concurrent appends of the same
    account wait here, so each sees the head the previous one left. SQLite transactions are
    ``BEGIN IMMEDIATE`` (one writer at a time), which serialises them already.
    """
    pg = conn.dialect.name == "postgresql"
    cur = _driver(conn).cursor()
    try:
        cur.execute(_PG_LOCK_HEAD if pg else _LITE_LOCK_HEAD, (account_id,))
        return _head(cur.fetchone())
    finally:
        cur.close()


def create_head(conn: Connection, account_id: str, now: datetime) -> None:
    """Create the head row of an empty chain unless another transaction already did."""
    values = {"account_id": account_id, "seq": 0, "head_hash": GENESIS_HASH, "checkpoints": 0, "updated_at": now}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(heads).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(heads).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        conn.execute(heads.insert().values(**values))


_KNOWN_HEADS: dict[tuple[int, str], tuple[int, str]] = {}
_KNOWN_HEADS_MAX = 100_000


def known_head(conn: Connection, account_id: str) -> tuple[int, str] | None:
    """The head this process last wrote for the account (PostgreSQL only; a guess, never trusted)."""
    if conn.dialect.name != "postgresql":
        return None
    return _KNOWN_HEADS.get((id(conn.engine), account_id))


def remember_head(conn: Connection, account_id: str, seq: int, head_hash: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    if len(_KNOWN_HEADS) >= _KNOWN_HEADS_MAX:
        _KNOWN_HEADS.clear()
    _KNOWN_HEADS[(id(conn.engine), account_id)] = (seq, head_hash)


def append_if_head(conn: Connection, entry: AuditEntry, now: datetime) -> bool:
    """Insert ``entry`` and move the head to it only if the head is still ``(entry.seq - 1, entry.prev_hash)``.

    PostgreSQL, one statement. False (nothing written) when the head has moved.
    """
    return append_many_if_head(conn, [entry], now)


def _entry_values(entry: AuditEntry) -> tuple[Any, ...]:
    """An entry's row, in the column order of every insert here."""
    return (
        entry.account_id,
        entry.seq,
        entry.id,
        entry.action_type,
        entry.receipt_id,
        entry.actor_key_id,
        entry.actor_masked_key,
        entry.details_json,
        entry.timestamp,
        entry.prev_hash,
        entry.entry_hash,
    )


def append_entry(conn: Connection, entry: AuditEntry, now: datetime) -> None:
    """Insert the entry and move the account's head to it (the head must be locked by this transaction)."""
    values = _entry_values(entry)
    cur = _driver(conn).cursor()
    try:
        if conn.dialect.name == "postgresql":
            cur.execute(_PG_APPEND, (*values, entry.seq, entry.entry_hash, now, entry.account_id))
        else:
            cur.execute(_LITE_INSERT, values)
            cur.execute(_LITE_ADVANCE, (entry.seq, entry.entry_hash, _sqlite_time(now), entry.account_id))
    finally:
        cur.close()


_ENTRY_COLS = (
    'account_id, seq, id, action_type, receipt_id, actor_key_id, actor_masked_key, details, "timestamp", '
    "prev_hash, entry_hash"
)
_PG_VALUES_ROW = (
    "(%s::text, %s::bigint, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text)"
)


def append_many_if_head(conn: Connection, entries: list[AuditEntry], now: datetime) -> bool:
    """PostgreSQL, one statement: insert ``entries`` (consecutive, linked, of one account) and move the head to
    the last one, only if the head is still the first one's predecessor. False (nothing written) otherwise."""
    first, last = entries[0], entries[-1]
    sql = (
        "WITH h AS (UPDATE audit_chain_heads SET seq = %s, head_hash = %s, updated_at = %s "  # noqa: S608
        "WHERE account_id = %s AND seq = %s AND head_hash = %s RETURNING account_id) "
        f"INSERT INTO audit_entries ({_ENTRY_COLS}) SELECT v.* FROM h CROSS JOIN (VALUES "
        + ", ".join([_PG_VALUES_ROW] * len(entries))
        + ") AS v (a, s, i, t, r, k, m, d, ts, p, e)"
    )
    params: list[Any] = [last.seq, last.entry_hash, now, first.account_id, first.seq - 1, first.prev_hash]
    for e in entries:
        params += _entry_values(e)
    cur = _driver(conn).cursor()
    try:
        cur.execute(sql, params)
        return bool(cur.rowcount == len(entries))
    finally:
        cur.close()


def insert_entry(conn: Connection, entry: AuditEntry, hot: HotRows | None = None) -> None:
    """SQLite: insert the entry only; the head is moved by :func:`advance_head` (once per group commit).
    With ``hot`` (a hot-rows batch, which numbers the entries from the head it keeps) the row is written
    with the batch's others just before its COMMIT: nothing in a hot unit reads entries back."""
    if hot is not None:
        hot.insert(_LITE_INSERT, _entry_values(entry))
    else:
        _driver(conn).execute(_LITE_INSERT, _entry_values(entry))


def advance_head(conn: Connection, account_id: str, seq: int, head_hash: str, now: datetime) -> None:
    """SQLite: move the account's head to entry ``seq`` (its hash ``head_hash``)."""
    _driver(conn).execute(_LITE_ADVANCE, (seq, head_hash, _sqlite_time(now), account_id))


def get_head(conn: Connection, account_id: str) -> Head | None:
    return _head(
        conn.execute(
            sa.select(heads.c.seq, heads.c.head_hash, heads.c.checkpoints).where(heads.c.account_id == account_id)
        ).first()
    )


_ROWS_SQL = (
    'SELECT seq, id, action_type, receipt_id, actor_key_id, actor_masked_key, details, "timestamp", prev_hash, '
    "entry_hash FROM audit_entries WHERE account_id = {p} ORDER BY seq"
)


def iter_rows(conn: Connection, account_id: str, batch: int = 10_000) -> Generator[Sequence[Any], None, None]:
    """The account's entries in seq order as plain tuples (:data:`ROW_COLUMNS` layout), streamed.

    Verification reads every entry, so this uses the driver directly: a server-side cursor on
    PostgreSQL (constant memory), ``fetchmany`` on SQLite.
    """
    raw = _driver(conn)
    if conn.dialect.name == "postgresql":
        cur = raw.cursor(name=f"audit_rows_{id(conn):x}")
        cur.itersize = batch
        try:
            cur.execute(_ROWS_SQL.format(p="%s"), (account_id,))
            yield from cur
        finally:
            cur.close()
        return
    cur = raw.cursor()
    try:
        cur.execute(_ROWS_SQL.format(p="?"), (account_id,))
        while rows := cur.fetchmany(batch):
            yield from rows
    finally:
        cur.close()


def list_entries(
    conn: Connection,
    account_id: str,
    *,
    action_type: str | None,
    receipt_id: str | None,
    limit: int,
) -> tuple[list[Row[Any]], int]:
    """Newest first, with the total number of entries matching the filters. Without an action type,
    the ingest anchors (``TREE_SIGNED``, one per ingest request) are left out so the listing stays the
    seed's receipt-access log; ask for them by name."""
    where = [entries.c.account_id == account_id]
    if action_type is not None:
        where.append(entries.c.action_type == action_type)
    else:
        where.append(entries.c.action_type != "TREE_SIGNED")
    if receipt_id is not None:
        where.append(entries.c.receipt_id == receipt_id)
    rows = conn.execute(sa.select(entries).where(*where).order_by(entries.c.seq.desc()).limit(limit)).all()
    total = conn.execute(sa.select(sa.func.count()).select_from(entries).where(*where)).scalar_one()
    return list(rows), int(total)


def _checkpoint(row: Row[Any]) -> Checkpoint:
    return Checkpoint(
        account_id=row.account_id,
        seq=int(row.seq),
        head_hash=row.head_hash,
        timestamp=row.timestamp,
        key_id=row.key_id,
        prev_checkpoint_hash=row.prev_checkpoint_hash,
        signature=row.signature,
    )


def list_checkpoints(
    conn: Connection, account_id: str, *, newest_first: bool = False, limit: int | None = None
) -> list[Checkpoint]:
    """The account's checkpoints in the order they were made (or the reverse)."""
    order = checkpoints.c.number.desc() if newest_first else checkpoints.c.number
    q = sa.select(checkpoints).where(checkpoints.c.account_id == account_id).order_by(order)
    if limit is not None:
        q = q.limit(limit)
    return [_checkpoint(r) for r in conn.execute(q)]


def get_checkpoint(conn: Connection, account_id: str, number: int) -> Checkpoint | None:
    row = conn.execute(
        sa.select(checkpoints).where(checkpoints.c.account_id == account_id, checkpoints.c.number == number)
    ).first()
    return None if row is None else _checkpoint(row)


def insert_checkpoint(conn: Connection, number: int, cp: Checkpoint, now: datetime) -> None:
    conn.execute(
        checkpoints.insert().values(
            account_id=cp.account_id,
            number=number,
            seq=cp.seq,
            head_hash=cp.head_hash,
            timestamp=cp.timestamp,
            key_id=cp.key_id,
            prev_checkpoint_hash=cp.prev_checkpoint_hash,
            signature=cp.signature,
        )
    )
    conn.execute(heads.update().where(heads.c.account_id == cp.account_id).values(checkpoints=number, updated_at=now))


def accounts_due_for_checkpoint(conn: Connection) -> list[str]:
    """Accounts whose chain head moved since their last checkpoint (or that have none yet)."""
    last = checkpoints.alias("last")
    q = (
        sa.select(heads.c.account_id)
        .select_from(
            heads.outerjoin(
                last, sa.and_(last.c.account_id == heads.c.account_id, last.c.number == heads.c.checkpoints)
            )
        )
        .where(sa.or_(sa.and_(heads.c.checkpoints == 0, heads.c.seq > 0), last.c.seq < heads.c.seq))
        .order_by(heads.c.account_id)
    )
    return [r[0] for r in conn.execute(q)]


def account_ids_with_logs(conn: Connection, email: str | None = None) -> list[tuple[str, str]]:
    """``(account_id, email)`` of every account (one, with ``email``), in email order."""
    q = sa.select(accounts.c.id, accounts.c.email).order_by(accounts.c.email)
    if email is not None:
        q = q.where(accounts.c.email == email)
    return [(r[0], r[1]) for r in conn.execute(q)]


def entries_of_type(conn: Connection, account_id: str, action_type: str) -> Iterator[tuple[int, str, Any]]:
    """``(seq, entry_hash, details)`` of the account's entries of one action type, in chain order."""
    q = (
        sa.select(audit_entries.c.seq, audit_entries.c.entry_hash, audit_entries.c.details)
        .where(audit_entries.c.account_id == account_id, audit_entries.c.action_type == action_type)
        .order_by(audit_entries.c.seq)
    )
    for seq, entry_hash, details in conn.execute(q):
        yield int(seq), str(entry_hash), details
