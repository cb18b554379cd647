"""audit: hash-chained audit entries, per-account chain heads, signed checkpoints."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_chain_heads",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("checkpoints", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_audit_chain_heads"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_audit_chain_heads_account_id_accounts"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=True),
        sa.Column("actor_key_id", sa.String(40), nullable=True),
        sa.Column("actor_masked_key", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("timestamp", sa.String(32), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "seq", name="pk_audit_entries"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_audit_entries_account_id_accounts"),
        sa.UniqueConstraint("id", name="uq_audit_entries_id"),
    )
    op.create_index("ix_audit_entries_account_receipt", "audit_entries", ["account_id", "receipt_id"])
    op.create_index("ix_audit_entries_account_action", "audit_entries", ["account_id", "action_type", "seq"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("prev_checkpoint_hash", sa.String(64), nullable=True),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "number", name="pk_audit_checkpoints"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_audit_checkpoints_account_id_accounts"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_entries_account_action", table_name="audit_entries")
    op.drop_index("ix_audit_entries_account_receipt", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("audit_chain_heads")
