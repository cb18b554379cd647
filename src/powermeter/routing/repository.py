"""SQL of the routing capability (portable: SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from powermeter.routing.tables import route_choices

_select_choice = sa.select(route_choices.c.region).where(
    route_choices.c.account_id == sa.bindparam("account_id"), route_choices.c.context == sa.bindparam("context")
)


def get_choice(conn: Connection, account_id: str, context: str) -> str | None:
    """The region last chosen for this account and routing context, if any."""
    if conn.dialect.name == "sqlite":
        # on the driver: a request's one read, without SQLAlchemy's per-statement set-up (~30 µs)
        raw = conn.connection.driver_connection
        found = raw.execute(_SQLITE_CHOICE, (account_id, context)).fetchone()  # type: ignore[union-attr]
        return None if found is None else str(found[0])
    row = conn.execute(_select_choice, {"account_id": account_id, "context": context}).first()
    return None if row is None else str(row[0])


_SQLITE_CHOICE = "SELECT region FROM route_choices WHERE account_id = ? AND context = ?"


def set_choice(conn: Connection, account_id: str, context: str, region: str, now: datetime, *, existed: bool) -> None:
    """Record the chosen region (insert the first time, update afterwards)."""
    if existed:
        conn.execute(
            sa.update(route_choices)
            .where(route_choices.c.account_id == account_id, route_choices.c.context == context)
            .values(region=region, updated_at=now)
        )
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(route_choices).values(account_id=account_id, context=context, region=region, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[route_choices.c.account_id, route_choices.c.context],
                set_={"region": stmt.excluded.region, "updated_at": stmt.excluded.updated_at},
            )
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt2 = sqlite_insert(route_choices).values(
            account_id=account_id, context=context, region=region, updated_at=now
        )
        conn.execute(
            stmt2.on_conflict_do_update(
                index_elements=[route_choices.c.account_id, route_choices.c.context],
                set_={"region": stmt2.excluded.region, "updated_at": stmt2.excluded.updated_at},
            )
        )
