"""Tables of accounts: accounts, API keys and usage counters (idempotency records: ``infra/db/idempotency.py``)."""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("plan", sa.String(40), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", TS, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("scopes", sa.String(500), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_used_at", TS, nullable=True),
    sa.Column("revoked_at", TS, nullable=True),
    sa.Column("expires_at", TS, nullable=True),  # optional: refused from this instant on
)

# Exact billing counters: (account, metric, period) -> value. Calls are counted in units,
# energy in micro-kWh so sums are exact integers.
usage_counters = sa.Table(
    "usage_counters",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("metric", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
