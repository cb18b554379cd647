"""Every SQL statement about accounts, keys and usage counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable

from powermeter.accounts.tables import accounts, api_keys, usage_counters


def get_account_by_email(conn: Connection, email: str) -> Row[Any] | None:
    return conn.execute(sa.select(accounts).where(accounts.c.email == email)).first()


def get_account(conn: Connection, account_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()


def count_accounts(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one())


def insert_account(conn: Connection, **values: Any) -> None:
    conn.execute(accounts.insert().values(**values))


def update_account(conn: Connection, account_id: str, **values: Any) -> None:
    conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))


def insert_key(conn: Connection, **values: Any) -> None:
    conn.execute(api_keys.insert().values(**values))


def count_active_keys(conn: Connection, account_id: str) -> int:
    q = (
        sa.select(sa.func.count())
        .select_from(api_keys)
        .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
    )
    return int(conn.execute(q).scalar_one())


def list_keys(conn: Connection, account_id: str) -> Sequence[Row[Any]]:
    q = sa.select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.created_at)
    return conn.execute(q).all()


def get_key(conn: Connection, key_id: str) -> Row[Any] | None:
    return conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()


_AUTH_Q = (
    sa.select(
        api_keys.c.id,
        api_keys.c.name,
        api_keys.c.last4,
        api_keys.c.scopes,
        api_keys.c.last_used_at,
        api_keys.c.revoked_at,
        api_keys.c.expires_at,
        accounts.c.id.label("account_id"),
        accounts.c.email,
        accounts.c.plan,
    )
    .select_from(api_keys.join(accounts, accounts.c.id == api_keys.c.account_id))
    .where(api_keys.c.key_hash == sa.bindparam("h"))
)


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    name: str
    last4: str
    scopes: str
    last_used_at: datetime | None
    revoked_at: datetime | None
    account_id: str
    email: str
    plan: str
    expires_at: datetime | None = None


# The hot path of every authenticated request talks to the SQLite driver directly (about 5 µs a
# statement instead of about 50 µs through SQLAlchemy's execution layer). Times are stored the way
# SQLAlchemy stores them on SQLite (naive UTC text), so both paths read and write the same rows.
_SQLITE_AUTH = (
    "SELECT k.id, k.name, k.last4, k.scopes, k.last_used_at, k.revoked_at, a.id, a.email, a.plan, k.expires_at "
    "FROM api_keys AS k JOIN accounts AS a ON a.id = k.account_id WHERE k.key_hash = ?"
)
_SQLITE_TOUCH = "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
_SQLITE_ADD_USAGE = (
    "INSERT INTO usage_counters (account_id, metric, period, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (account_id, metric, period) DO UPDATE SET value = usage_counters.value + excluded.value "
    "RETURNING value"
)


# PostgreSQL: the same statements on the psycopg connection directly (psycopg prepares repeated ones on
# the server); about 60 µs a statement less than SQLAlchemy's execution layer.
_PG_AUTH = _SQLITE_AUTH.replace("?", "%s")
_PG_ADD_USAGE = _SQLITE_ADD_USAGE.replace("?", "%s")
_PG_GET_USAGE = "SELECT value FROM usage_counters WHERE account_id = %s AND metric = %s AND period = %s"
_SQLITE_GET_USAGE = "SELECT value FROM usage_counters WHERE account_id = ? AND metric = ? AND period = ?"


def _pg(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _sqlite_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_text(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def find_key_by_hash(conn: Connection, key_hash: str) -> KeyRow | None:
    if conn.dialect.name == "sqlite":
        row = conn.connection.driver_connection.execute(_SQLITE_AUTH, (key_hash,)).fetchone()  # type: ignore[union-attr]
        if row is None:
            return None
        return KeyRow(
            row[0],
            row[1],
            row[2],
            row[3],
            _sqlite_time(row[4]),
            _sqlite_time(row[5]),
            row[6],
            row[7],
            row[8],
            _sqlite_time(row[9]),
        )
    if conn.dialect.name == "postgresql":
        row = _pg(conn).execute(_PG_AUTH, (key_hash,)).fetchone()
        return None if row is None else KeyRow(*row)
    r = conn.execute(_AUTH_Q, {"h": key_hash}).first()
    if r is None:
        return None
    return KeyRow(
        r.id, r.name, r.last4, r.scopes, r.last_used_at, r.revoked_at, r.account_id, r.email, r.plan, r.expires_at
    )


def touch_key(conn: Connection, key_id: str, now: datetime) -> None:
    if conn.dialect.name == "sqlite":
        conn.connection.driver_connection.execute(_SQLITE_TOUCH, (_sqlite_text(now), key_id))  # type: ignore[union-attr]
        return
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))


def revoke_key(conn: Connection, key_id: str, now: datetime) -> int:
    res = conn.execute(
        api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(res.rowcount)


def add_usage(conn: Connection, account_id: str, metric: str, period: str, amount: int) -> int:
    """Atomically add ``amount`` to a counter and return the new value (upsert, both dialects)."""
    if conn.dialect.name == "sqlite":
        cur = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            _SQLITE_ADD_USAGE, (account_id, metric, period, amount)
        )
        return int(cur.fetchone()[0])
    stmt: Executable
    if conn.dialect.name == "postgresql":
        return int(_pg(conn).execute(_PG_ADD_USAGE, (account_id, metric, period, amount)).fetchone()[0])
    if conn.dialect.name == "postgresql":  # pragma: no cover - kept for other PostgreSQL drivers
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        p = pg_insert(usage_counters).values(account_id=account_id, metric=metric, period=period, value=amount)
        stmt = p.on_conflict_do_update(
            index_elements=["account_id", "metric", "period"],
            set_={"value": usage_counters.c.value + p.excluded.value},
        ).returning(usage_counters.c.value)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        s = sqlite_insert(usage_counters).values(account_id=account_id, metric=metric, period=period, value=amount)
        stmt = s.on_conflict_do_update(
            index_elements=["account_id", "metric", "period"],
            set_={"value": usage_counters.c.value + s.excluded.value},
        ).returning(usage_counters.c.value)
    return int(conn.execute(stmt).scalar_one())


def get_usage(conn: Connection, account_id: str, metric: str, period: str) -> int:
    if conn.dialect.name == "postgresql":
        row = _pg(conn).execute(_PG_GET_USAGE, (account_id, metric, period)).fetchone()
        return 0 if row is None else int(row[0])
    if conn.dialect.name == "sqlite":
        row = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            _SQLITE_GET_USAGE, (account_id, metric, period)
        ).fetchone()
        return 0 if row is None else int(row[0])
    q = sa.select(usage_counters.c.value).where(
        usage_counters.c.account_id == account_id,
        usage_counters.c.metric == metric,
        usage_counters.c.period == period,
    )
    v = conn.execute(q).scalar()
    return int(v or 0)
