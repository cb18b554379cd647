"""Tables of the devices capability: each account's tracked devices and its rate profile."""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

user_devices = sa.Table(
    "user_devices",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUID
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("catalog_device_slug", sa.String(100), nullable=True),
    sa.Column("watts", sa.Float, nullable=False),  # snapshot at the time of add
    sa.Column("hours_per_day", sa.Float, nullable=False),
    sa.Column("schedule", sa.Text, nullable=True),  # JSON [[start_hour, end_hour], …]
    sa.Column("shiftable", sa.Boolean, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),  # JSON object, the API's "metadata"
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

user_profiles = sa.Table(
    "user_profiles",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("region_code", sa.String(16), nullable=True),
    sa.Column("rate_config", sa.Text, nullable=True),  # JSON rate override, or NULL
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
