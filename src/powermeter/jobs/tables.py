"""Tables of the compute-job capability: receipts, the signed per-request Merkle trees, and the
deduplicated factor profiles the receipts reference.

A receipt's leaf bytes (canonical JSON) are rebuilt from its row, its profile and its tree exactly
as they were hashed; ``leaf_hash`` is stored so the rebuild is checked on every read.
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

receipt_trees = sa.Table(
    "receipt_trees",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),  # compact reference for receipts
    sa.Column("tree_id", sa.String(40), nullable=False, unique=True),  # public id
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("tree_size", sa.Integer, nullable=False),
    sa.Column("root_sha256", sa.String(64), nullable=False),
    sa.Column("issued_at", sa.String(40), nullable=False),  # the exact string that was signed
    sa.Column("key_id", sa.String(80), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),  # base64 Ed25519 over the tree head
    sa.Column("leaf_hashes", sa.LargeBinary, nullable=False),  # 32 bytes per leaf, in leaf order
    sa.Column("profile_ids", sa.Text, nullable=False),  # JSON list: receipts.profile_index → profile id
    # orjson, columnar: the inputs and breakdown of every leaf (cpu_kwh, gpu_kwh, memory_kwh,
    # duration_minutes, cpu_cores, memory_gb, gpu_cores), read back only to rebuild a receipt
    sa.Column("details", sa.LargeBinary, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

receipt_profiles = sa.Table(
    "receipt_profiles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of body
    sa.Column("body", sa.Text, nullable=False),  # canonical JSON: factors, location, versions, warnings
)

# One row per receipt: the seed fields, the job's inputs and the energy figures as numbers (doubles
# round-trip exactly), from which the receipt's canonical bytes are rebuilt. Its time is its tree's.
# Rows are kept narrow on purpose: a 10,000-job batch writes 10,000 of them in one transaction.
receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("receipt_id", sa.String(40), nullable=False, unique=True),
    # No foreign keys on this table, on purpose: a 10,000-job batch inserts 10,000 rows, and the two
    # checks per row cost ~10 ms (20 %) of that insert. Both references are written by the same
    # transaction: the tree row just before its receipts, for an account the request authenticated
    # (receipt_trees keeps its foreign key to accounts).
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=False),
    sa.Column("tree_seq", sa.Integer, nullable=False),  # receipt_trees.seq
    sa.Column("leaf_index", sa.Integer, nullable=False),
    sa.Column("profile_index", sa.Integer, nullable=False),
    sa.Column("kwh", sa.Float, nullable=False),
    sa.Column("co2_grams", sa.Float, nullable=False),
    sa.Column("geo_iso", sa.String(64), nullable=False),
    sa.Column("options", sa.Text, nullable=True),  # JSON object of the overrides given, if any
    sa.UniqueConstraint("account_id", "job_id", name="uq_receipts_account_id_job_id"),
    sa.Index("ix_receipts_account_id_seq", "account_id", "seq"),
    # the reports' completeness proof and retention read and delete receipts tree by tree (migration 0013)
    sa.Index("ix_receipts_tree_seq_leaf_index", "tree_seq", "leaf_index"),
)
