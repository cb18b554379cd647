"""Tables of the cost capability: tariffs imported from OpenEI URDB exports."""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

imported_tariffs = sa.Table(
    "imported_tariffs",
    metadata,
    sa.Column("id", sa.String(120), primary_key=True),  # "urdb-<label>"
    sa.Column("region", sa.String(16), nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),  # the tariff mapping (JSON), as data/rates.py reads it
    sa.Column("source_file", sa.String(500), nullable=False),
    sa.Column("imported_at", TS, nullable=False),
)
