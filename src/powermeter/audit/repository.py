"""Every SQL statement of the audit log. Entries and checkpoints are only inserted, never updated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from powermeter.accounts.tables import accounts
from powermeter.audit.tables import audit_chain_heads, audit_checkpoints, audit_entries
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

_LOCK_HEAD = (
    sa.select(heads.c.seq, heads.c.head_hash, heads.c.checkpoints)
    .where(heads.c.account_id == sa.bindparam("b_account"))
    .with_for_update()
)
_ADVANCE_HEAD = (
    heads.update()
    .where(heads.c.account_id == sa.bindparam("b_account"))
    .values(seq=sa.bindparam("b_seq"), head_hash=sa.bindparam("b_hash"), updated_at=sa.bindparam("b_now"))
)
_INSERT_ENTRY = entries.insert()


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
    return _head(conn.execute(_LOCK_HEAD, {"b_account": account_id}).first())


def create_head(conn: Connection, account_id: str, now: datetime) -> None:
    """Create the head row of an empty chain unless another transaction already did."""
    values = {"account_id": account_id, "seq": 0, "head_hash": GENESIS_HASH, "checkpoints": 0, "updated_at": now}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(heads).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(heads).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        conn.execute(heads.insert().values(**values))


def insert_entry(conn: Connection, entry: AuditEntry) -> None:
    conn.execute(
        _INSERT_ENTRY,
        {
            "account_id": entry.account_id,
            "seq": entry.seq,
            "id": entry.id,
            "action_type": entry.action_type,
            "receipt_id": entry.receipt_id,
            "actor_key_id": entry.actor_key_id,
            "actor_masked_key": entry.actor_masked_key,
            "details": entry.details_json,
            "timestamp": entry.timestamp,
            "prev_hash": entry.prev_hash,
            "entry_hash": entry.entry_hash,
        },
    )


def advance_head(conn: Connection, account_id: str, seq: int, head_hash: str, now: datetime) -> None:
    conn.execute(_ADVANCE_HEAD, {"b_account": account_id, "b_seq": seq, "b_hash": head_hash, "b_now": now})


def get_head(conn: Connection, account_id: str) -> Head | None:
    return _head(
        conn.execute(
            sa.select(heads.c.seq, heads.c.head_hash, heads.c.checkpoints).where(heads.c.account_id == account_id)
        ).first()
    )


def iter_rows(conn: Connection, account_id: str, batch: int = 5000) -> Iterator[Sequence[Any]]:
    """The account's entries in seq order, streamed (:data:`ROW_COLUMNS` layout)."""
    q = sa.select(*ROW_COLUMNS).where(entries.c.account_id == account_id).order_by(entries.c.seq)
    result = conn.execution_options(yield_per=batch).execute(q)
    for part in result.partitions():
        yield from part


def list_entries(
    conn: Connection,
    account_id: str,
    *,
    action_type: str | None,
    receipt_id: str | None,
    limit: int,
) -> tuple[list[Row[Any]], int]:
    """Newest first, with the total number of entries matching the filters."""
    where = [entries.c.account_id == account_id]
    if action_type is not None:
        where.append(entries.c.action_type == action_type)
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
    conn.execute(
        heads.update().where(heads.c.account_id == cp.account_id).values(checkpoints=number, updated_at=now)
    )


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
