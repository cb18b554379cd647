"""i13: receipts indexed by (tree_seq, leaf_index).

The reports' completeness proof (``reports.ledger``) and retention (``reports.retention``) read and
delete receipts tree by tree. Without this index every tree cost a scan of the whole ``receipts``
table: on PostgreSQL, 1,000,000 receipts, one 10,000-leaf tree read in 79 ms by a sequential scan and
in 1.5 ms through the index, so a report over 100 such trees spent ~8 s scanning; with one tree per
``POST /v1/report`` request it did not finish. Cost on the write path: one more index entry per
receipt (a 10,000-row insert measured 131–183 ms without it and 146–213 ms with it on a shared machine).
See docs/partitioning.md.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_receipts_tree_seq_leaf_index", "receipts", ["tree_seq", "leaf_index"])


def downgrade() -> None:
    op.drop_index("ix_receipts_tree_seq_leaf_index", table_name="receipts")
