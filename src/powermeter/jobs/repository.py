"""Every SQL statement of the compute-job capability."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.jobs.receipts import ProfileDoc
from powermeter.jobs.tables import receipt_profiles, receipt_trees, receipts

RECEIPT_COLUMNS = (
    "receipt_id", "account_id", "job_id", "tree_id", "leaf_index", "leaf_hash", "profile_id", "kwh",
    "co2_grams", "inputs_json", "results_json", "created_at",
)  # fmt: skip
_INSERT_SQL = (
    f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' for _ in RECEIPT_COLUMNS)})"
)


def insert_tree(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(receipt_trees.insert(), row)


def ensure_profiles(conn: Connection, profiles: Iterable[ProfileDoc]) -> None:
    """Store profiles not stored yet (they are content-addressed: same id, same body)."""
    wanted = {p.id: p for p in profiles}
    if not wanted:
        return
    have = set(
        conn.execute(sa.select(receipt_profiles.c.id).where(receipt_profiles.c.id.in_(list(wanted)))).scalars()
    )
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


def insert_receipts(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert receipt rows (tuples in :data:`RECEIPT_COLUMNS` order) in one ``executemany``."""
    if conn.dialect.name == "sqlite":
        # The driver's executemany directly: ~3× faster than SQLAlchemy's per-row parameter handling.
        dbapi: Any = conn.connection.driver_connection
        dbapi.executemany(_INSERT_SQL, rows)
        return
    conn.execute(receipts.insert(), [dict(zip(RECEIPT_COLUMNS, r, strict=True)) for r in rows])


def existing_job_ids(conn: Connection, account_id: str, job_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(job_ids), 500):
        chunk = list(job_ids[i : i + 500])
        q = sa.select(receipts.c.job_id).where(receipts.c.account_id == account_id, receipts.c.job_id.in_(chunk))
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
        sa.select(receipts.c.receipt_id, receipts.c.job_id, receipts.c.kwh, receipts.c.co2_grams,
                  receipts.c.created_at)
        .where(*where)
        .order_by(receipts.c.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(q).all()), int(total)


def get_receipt(conn: Connection, account_id: str, receipt_id: str) -> Any:
    q = (
        sa.select(
            receipts,
            receipt_trees.c.tree_size,
            receipt_trees.c.root_sha256,
            receipt_trees.c.issued_at,
            receipt_trees.c.key_id,
            receipt_trees.c.signature,
            receipt_profiles.c.body.label("profile_body"),
        )
        .join(receipt_trees, receipt_trees.c.id == receipts.c.tree_id)
        .join(receipt_profiles, receipt_profiles.c.id == receipts.c.profile_id)
        .where(receipts.c.account_id == account_id, receipts.c.receipt_id == receipt_id)
    )
    return conn.execute(q).first()


def tree_leaf_hashes(conn: Connection, tree_id: str) -> list[str]:
    q = sa.select(receipts.c.leaf_hash).where(receipts.c.tree_id == tree_id).order_by(receipts.c.leaf_index)
    return list(conn.execute(q).scalars())
