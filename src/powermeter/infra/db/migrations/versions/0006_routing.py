"""routing: the region each account was last routed to per routing context (hysteresis state)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "route_choices",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("context", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_route_choices_account_id_accounts"),
        sa.PrimaryKeyConstraint("account_id", "context", name="pk_route_choices"),
    )


def downgrade() -> None:
    op.drop_table("route_choices")
