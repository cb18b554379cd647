"""Tables of the routing capability.

``route_choices`` remembers the region each account was last routed to for one routing context
(source region, candidate set and policy), so the hysteresis margin works across requests and
across workers: a near-tie keeps the region the caller already uses.
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

route_choices = sa.Table(
    "route_choices",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("context", sa.String(64), primary_key=True),
    sa.Column("region", sa.String(64), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
