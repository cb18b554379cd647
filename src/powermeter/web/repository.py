"""Every SQL statement of the dashboard: login sessions and the usage-counter history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from powermeter.accounts.tables import accounts, usage_counters
from powermeter.jobs.tables import receipt_trees, receipts
from powermeter.web.tables import web_sessions

_SESSION_Q = (
    sa.select(
        web_sessions.c.id,
        web_sessions.c.account_id,
        web_sessions.c.csrf_token,
        web_sessions.c.created_at,
        web_sessions.c.last_seen_at,
        web_sessions.c.expires_at,
        accounts.c.email,
        accounts.c.plan,
        accounts.c.is_admin,
    )
    .select_from(web_sessions.join(accounts, accounts.c.id == web_sessions.c.account_id))
    .where(web_sessions.c.id == sa.bindparam("sid"))
)


def insert_session(conn: Connection, **values: Any) -> None:
    conn.execute(web_sessions.insert().values(**values))


def get_session(conn: Connection, session_id: str) -> Row[Any] | None:
    return cast("Row[Any] | None", conn.execute(_SESSION_Q, {"sid": session_id}).first())


def touch_session(conn: Connection, session_id: str, now: datetime) -> None:
    conn.execute(web_sessions.update().where(web_sessions.c.id == session_id).values(last_seen_at=now))


def delete_session(conn: Connection, session_id: str) -> int:
    return int(conn.execute(web_sessions.delete().where(web_sessions.c.id == session_id)).rowcount)


def delete_expired_sessions(conn: Connection, now: datetime) -> int:
    return int(conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now)).rowcount)


def set_pending_key(conn: Connection, session_id: str, sealed: str | None) -> None:
    conn.execute(web_sessions.update().where(web_sessions.c.id == session_id).values(pending_key=sealed))


def take_pending_key(conn: Connection, session_id: str) -> str | None:
    """The session's pending key (sealed), cleared in the same transaction: it is shown once."""
    q = sa.select(web_sessions.c.pending_key).where(web_sessions.c.id == session_id)
    sealed = conn.execute(q).scalar()
    if sealed is not None:
        set_pending_key(conn, session_id, None)
    return cast("str | None", sealed)


def count_sessions(conn: Connection, account_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(web_sessions).where(web_sessions.c.account_id == account_id)
    return int(conn.execute(q).scalar_one())


def usage_history(
    conn: Connection, account_id: str, metrics: Sequence[str], first_day: str, last_day: str
) -> list[tuple[str, str, int]]:
    """Daily usage counters ``(metric, 'YYYY-MM-DD', value)`` between two days (inclusive).

    Monthly counters (``YYYY-MM``) share the table; the length filter keeps only daily ones.
    """
    q = (
        sa.select(usage_counters.c.metric, usage_counters.c.period, usage_counters.c.value)
        .where(
            usage_counters.c.account_id == account_id,
            usage_counters.c.metric.in_(list(metrics)),
            usage_counters.c.period >= first_day,
            usage_counters.c.period <= last_day,
            sa.func.length(usage_counters.c.period) == 10,
        )
        .order_by(usage_counters.c.period)
    )
    return [(r.metric, r.period, int(r.value)) for r in conn.execute(q)]


def monthly_counters(conn: Connection, account_id: str, period: str) -> dict[str, int]:
    """This month's counters (``route_calls`` …) of an account."""
    q = sa.select(usage_counters.c.metric, usage_counters.c.value).where(
        usage_counters.c.account_id == account_id, usage_counters.c.period == period
    )
    return {r.metric: int(r.value) for r in conn.execute(q)}


RECEIPT_SORTS = {
    "issued": receipts.c.seq,
    "job": receipts.c.job_id,
    "kwh": receipts.c.kwh,
    "co2": receipts.c.co2_grams,
    "location": receipts.c.geo_iso,
}


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def find_receipts(
    conn: Connection,
    account_id: str,
    *,
    q: str,
    location: str,
    issued_from: datetime | None,
    issued_before: datetime | None,
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """The account's receipts whose job id or receipt id contains ``q`` (case-insensitive), at a
    location, issued in ``[issued_from, issued_before)``; sorted, one page, and the total."""
    where: list[Any] = [receipts.c.account_id == account_id]
    if q:
        pattern = _like(q.lower())
        where.append(
            sa.or_(
                sa.func.lower(receipts.c.job_id).like(pattern, escape="\\"),
                sa.func.lower(receipts.c.receipt_id).like(pattern, escape="\\"),
            )
        )
    if location:
        where.append(sa.func.upper(receipts.c.geo_iso) == location.upper())
    if issued_from is not None:
        where.append(receipt_trees.c.created_at >= issued_from)
    if issued_before is not None:
        where.append(receipt_trees.c.created_at < issued_before)
    joined = receipts.join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
    total = conn.execute(sa.select(sa.func.count()).select_from(joined).where(*where)).scalar_one()
    col = RECEIPT_SORTS.get(sort, receipts.c.seq)
    order = [col.desc() if descending else col.asc(), receipts.c.seq.desc()]
    query = (
        sa.select(
            receipts.c.receipt_id,
            receipts.c.job_id,
            receipts.c.kwh,
            receipts.c.co2_grams,
            receipts.c.geo_iso,
            receipt_trees.c.issued_at,
        )
        .select_from(joined)
        .where(*where)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query).all()), int(total)


def receipt_locations(conn: Connection, account_id: str) -> list[str]:
    q = sa.select(receipts.c.geo_iso).where(receipts.c.account_id == account_id).distinct().order_by(receipts.c.geo_iso)
    return [str(r[0]) for r in conn.execute(q)]
