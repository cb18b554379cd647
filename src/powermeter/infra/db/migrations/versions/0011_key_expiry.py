"""i21: optional API key expiry; a dashboard session's pending (just created, encrypted) key."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("pending_key", sa.String(600), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_column("pending_key")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
