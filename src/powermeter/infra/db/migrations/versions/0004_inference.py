"""inference: one row per recorded LLM request (POST /v1/inference), read by the history, its details,
and the per-day rollup that counts and sums the records."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inference_records",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("key_name", sa.String(200), nullable=False),
        sa.Column("masked_key", sa.String(40), nullable=False),
        sa.Column("log_date", TS, nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("energy_wh", sa.Float, nullable=False),
        sa.Column("co2_grams", sa.Float, nullable=False),
        sa.Column("water_ml", sa.Float, nullable=False),
        sa.Column("tree_days", sa.Float, nullable=False),
        sa.Column("calculation_method", sa.String(20), nullable=False),
        sa.Column("final_region", sa.String(100), nullable=False),
        sa.Column("final_provider", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_inference_records_account_id_accounts"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name="fk_inference_records_key_id_api_keys"),
        sa.PrimaryKeyConstraint("seq", name="pk_inference_records"),
        sa.UniqueConstraint("id", name="uq_inference_records_id"),
    )
    op.create_index("ix_inference_records_account_id_log_date", "inference_records", ["account_id", "log_date", "seq"])
    op.create_index(
        "ix_inference_records_account_id_key_name",
        "inference_records",
        ["account_id", "key_name", "log_date", "seq"],
    )
    op.create_table(
        "inference_details",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["id"], ["inference_records.id"], name="fk_inference_details_id_inference_records"),
        sa.PrimaryKeyConstraint("id", name="pk_inference_details"),
    )
    op.create_table(
        "inference_daily",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("key_name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("energy_wh", sa.Float, nullable=False),
        sa.Column("co2_grams", sa.Float, nullable=False),
        sa.Column("water_ml", sa.Float, nullable=False),
        sa.Column("tree_days", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_inference_daily_account_id_accounts"),
        sa.PrimaryKeyConstraint("account_id", "day", "key_name", "provider", "model_id", name="pk_inference_daily"),
    )


def downgrade() -> None:
    op.drop_table("inference_daily")
    op.drop_table("inference_details")
    op.drop_index("ix_inference_records_account_id_key_name", table_name="inference_records")
    op.drop_index("ix_inference_records_account_id_log_date", table_name="inference_records")
    op.drop_table("inference_records")
