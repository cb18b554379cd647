"""jobs: receipt_trees, receipt_profiles, receipts."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "receipt_trees",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("tree_id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("tree_size", sa.Integer, nullable=False),
        sa.Column("root_sha256", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(80), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("leaf_hashes", sa.LargeBinary, nullable=False),
        sa.Column("profile_ids", sa.Text, nullable=False),
        sa.Column("details", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_receipt_trees"),
        sa.UniqueConstraint("tree_id", name="uq_receipt_trees_tree_id"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_receipt_trees_account_id_accounts"),
    )
    op.create_index("ix_receipt_trees_account_id", "receipt_trees", ["account_id"])
    op.create_table(
        "receipt_profiles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipt_profiles"),
    )
    op.create_table(
        "receipts",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("tree_seq", sa.Integer, nullable=False),
        sa.Column("leaf_index", sa.Integer, nullable=False),
        sa.Column("profile_index", sa.Integer, nullable=False),
        sa.Column("kwh", sa.Float, nullable=False),
        sa.Column("co2_grams", sa.Float, nullable=False),
        sa.Column("geo_iso", sa.String(64), nullable=False),
        sa.Column("options", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_receipts"),
        sa.UniqueConstraint("receipt_id", name="uq_receipts_receipt_id"),
        sa.UniqueConstraint("account_id", "job_id", name="uq_receipts_account_id_job_id"),
    )
    op.create_index("ix_receipts_account_id_seq", "receipts", ["account_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_receipts_account_id_seq", table_name="receipts")
    op.drop_table("receipts")
    op.drop_table("receipt_profiles")
    op.drop_index("ix_receipt_trees_account_id", table_name="receipt_trees")
    op.drop_table("receipt_trees")
