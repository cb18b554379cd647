"""cost_devices: imported URDB tariffs, tracked devices and rate profiles."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "imported_tariffs",
        sa.Column("id", sa.String(120), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("source_file", sa.String(500), nullable=False),
        sa.Column("imported_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_imported_tariffs"),
    )
    op.create_index("ix_imported_tariffs_region", "imported_tariffs", ["region"])
    op.create_table(
        "user_devices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("catalog_device_slug", sa.String(100), nullable=True),
        sa.Column("watts", sa.Float, nullable=False),
        sa.Column("hours_per_day", sa.Float, nullable=False),
        sa.Column("schedule", sa.Text, nullable=True),
        sa.Column("shiftable", sa.Boolean, nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_user_devices_account_id_accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_user_devices"),
    )
    op.create_index("ix_user_devices_account_id", "user_devices", ["account_id"])
    op.create_table(
        "user_profiles",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("region_code", sa.String(16), nullable=True),
        sa.Column("rate_config", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_user_profiles_account_id_accounts"),
        sa.PrimaryKeyConstraint("account_id", name="pk_user_profiles"),
    )


def downgrade() -> None:
    op.drop_table("user_profiles")
    op.drop_index("ix_user_devices_account_id", table_name="user_devices")
    op.drop_table("user_devices")
    op.drop_index("ix_imported_tariffs_region", table_name="imported_tariffs")
    op.drop_table("imported_tariffs")
