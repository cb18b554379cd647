"""inference: the source and caller tag of each record as columns (filterable), and the sender's
idempotency key (POST /v1/inference/batch stores a retried record once)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inference_records", sa.Column("source", sa.String(100), nullable=True))
    op.add_column("inference_records", sa.Column("tag", sa.String(200), nullable=True))
    op.add_column("inference_records", sa.Column("idempotency_key", sa.String(200), nullable=True))
    op.create_index(
        "ix_inference_records_account_id_tag", "inference_records", ["account_id", "tag", "log_date", "seq"]
    )
    op.create_index(
        "uq_inference_records_account_id_idempotency_key",
        "inference_records",
        ["account_id", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_inference_records_account_id_idempotency_key", table_name="inference_records")
    op.drop_index("ix_inference_records_account_id_tag", table_name="inference_records")
    with op.batch_alter_table("inference_records") as batch:
        batch.drop_column("idempotency_key")
        batch.drop_column("tag")
        batch.drop_column("source")
