"""Tables of the reports capability: the account's reporting boundary, its sites' market-based
instruments and closed reporting periods. (The signatures of AI inference records, which the
completeness proof reads, live with the records in ``inference.tables``.)
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

report_settings = sa.Table(
    "report_settings",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("consolidation_approach", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(200), nullable=True),
    sa.Column("updated_at", TS, nullable=False),
)

report_sites = sa.Table(
    "report_sites",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("site", sa.String(64), primary_key=True),
    # canonical JSON: instrument type, supplier-specific rate, year, source, covered share, note
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

report_period_closes = sa.Table(
    "report_period_closes",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("closed_at", TS, nullable=False),
)
