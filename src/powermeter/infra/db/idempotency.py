"""The idempotency store: one row per (scope, Idempotency-Key), claimed, leased, finished or purged.
Every statement of ``infra/idempotency.py`` (the middleware) lives here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from powermeter.infra.db import Database, metadata

TS = sa.DateTime(timezone=True)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("content_type", sa.String(200), nullable=True),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("created_at", TS, nullable=False, index=True),
    # a pending claim's holder (host:pid:process token) and the time its lease runs out; the holder
    # renews the lease while it works, so a claim whose holder died is taken over (see claim())
    sa.Column("owner", sa.String(120), nullable=True),
    sa.Column("lease_until", TS, nullable=True),
)


def _aware(dt: datetime, now: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=now.tzinfo)


def _where(scope: str, key: str) -> Any:
    return (idempotency_keys.c.scope == scope) & (idempotency_keys.c.key == key)


def _same_owner(owner: str | None) -> Any:
    return idempotency_keys.c.owner.is_(None) if owner is None else idempotency_keys.c.owner == owner


def claim(
    db: Database,
    scope: str,
    key: str,
    fingerprint: str,
    now: datetime,
    *,
    lease: timedelta,
    me: str,
    retention: timedelta,
    holder_is_dead: Callable[[str | None], bool],
) -> tuple[str, Any]:
    """``("claimed", None)``, ``("existing", row)`` (finished, or another body) or ``("busy", until)``."""
    cond = _where(scope, key)
    with db.begin() as conn:
        row = conn.execute(sa.select(idempotency_keys).where(cond)).first()
        if row is not None:
            created = _aware(row.created_at, now)
            if now - created > retention:
                conn.execute(idempotency_keys.delete().where(cond))
            elif row.status_code is not None or row.request_hash != fingerprint:
                return "existing", row
            else:
                until = _aware(row.lease_until, now) if row.lease_until is not None else created + lease
                if until > now and not holder_is_dead(row.owner):
                    return "busy", until
                # the holder died (or stopped renewing): take the claim over, if nobody else did
                res = conn.execute(
                    idempotency_keys.update()
                    .where(cond, idempotency_keys.c.status_code.is_(None), _same_owner(row.owner))
                    .values(owner=me, lease_until=now + lease, created_at=now)
                )
                return ("claimed", None) if res.rowcount == 1 else ("busy", now + lease)
        try:
            with conn.begin_nested():
                conn.execute(
                    idempotency_keys.insert().values(
                        scope=scope,
                        key=key,
                        request_hash=fingerprint,
                        created_at=now,
                        owner=me,
                        lease_until=now + lease,
                    )
                )
        except IntegrityError:
            return "busy", now + lease
        return "claimed", None


def renew(db: Database, scope: str, key: str, me: str, until: datetime) -> None:
    with db.begin() as conn:
        conn.execute(
            idempotency_keys.update()
            .where(_where(scope, key), idempotency_keys.c.owner == me)
            .values(lease_until=until)
        )


def finish(
    db: Database, scope: str, key: str, me: str, *, keep: bool, status: int, content_type: str, body: bytes
) -> None:
    """Store the answer to replay (``keep``), or drop the claim so the request may be retried."""
    with db.begin() as conn:
        mine = _where(scope, key) & (idempotency_keys.c.owner == me)
        if keep:
            conn.execute(
                idempotency_keys.update()
                .where(mine)
                .values(status_code=status, content_type=content_type, body=body, lease_until=None)
            )
        else:
            conn.execute(idempotency_keys.delete().where(mine))


def purge(db: Database, before: datetime) -> int:
    with db.begin() as conn:
        res = conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < before))
        return int(res.rowcount)
