"""hardening: idempotency claims carry an owner and a lease; full-access keys gain keys:manage."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

# The scopes a key created without --scope had before keys:manage existed: such keys keep managing keys.
_FULL_BEFORE = {
    "report:write", "receipts:read", "audit:read", "inference:write", "history:read", "devices:read",
    "devices:write", "routing",
}  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("owner", sa.String(120), nullable=True))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))
    conn = op.get_bind()
    keys = sa.table("api_keys", sa.column("id", sa.String), sa.column("scopes", sa.String))
    for key_id, scopes in conn.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        have = set(scopes.split())
        if have >= _FULL_BEFORE and "keys:manage" not in have:
            conn.execute(keys.update().where(keys.c.id == key_id).values(scopes=f"{scopes} keys:manage"))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
