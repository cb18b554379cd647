"""reports (issue 20): reporting boundary settings, sites' market-based instruments, closed periods,
and the signatures of AI inference records (completeness proof)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report_settings",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("consolidation_approach", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(200), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "report_sites",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "report_period_closes",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("closed_at", TS, nullable=False),
    )
    op.create_table(
        "inference_signatures",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("application", sa.String(128), nullable=True),
        sa.Column("received_at", sa.String(40), nullable=False),
        sa.Column("leaf_sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(80), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
    )
    op.create_index("ix_inference_signatures_account_id", "inference_signatures", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_inference_signatures_account_id", table_name="inference_signatures")
    for name in ("inference_signatures", "report_period_closes", "report_sites", "report_settings"):
        op.drop_table(name)
