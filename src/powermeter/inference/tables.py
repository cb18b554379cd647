"""Tables of the AI-inference capability: one row per recorded LLM request.

The key's name and masked form are copied into the row when it is written (keys cannot be renamed),
so the history is filtered and rendered without a join. The two indexes serve the history's two
access paths, newest first: (account, date) and (account, key name, date).

``inference_details`` holds the rest of each record (inputs, resolution, ranges, factors, dataset
versions) so the history's rows stay narrow. ``inference_daily`` keeps per (account, UTC day, key
name, provider, model) counts and sums, updated in the same transaction as each insert: the
history's ``totalElements`` and the summary read a few hundred rollup rows instead of counting
millions of records when the date filters are whole days.
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

inference_records = sa.Table(
    "inference_records",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),  # UUIDv7: time-ordered, appends to its index
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.String(40), sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("key_name", sa.String(200), nullable=False),
    sa.Column("masked_key", sa.String(40), nullable=False),
    sa.Column("log_date", TS, nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),  # as sent ("" when omitted)
    sa.Column("model_id", sa.String(200), nullable=False),  # the catalog entry it resolved to
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
    # where the counts come from ("gateway", "dom_estimated", …) and the caller's tag (X-Powermeter-Tag)
    sa.Column("source", sa.String(100), nullable=True),
    sa.Column("tag", sa.String(200), nullable=True),
    # the sender's key for this record (POST /v1/inference/batch): a retried record is stored once
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Index("ix_inference_records_account_id_log_date", "account_id", "log_date", "seq"),
    sa.Index("ix_inference_records_account_id_key_name", "account_id", "key_name", "log_date", "seq"),
    sa.Index("ix_inference_records_account_id_tag", "account_id", "tag", "log_date", "seq"),
    sa.Index("uq_inference_records_account_id_idempotency_key", "account_id", "idempotency_key", unique=True),
)

inference_daily = sa.Table(
    "inference_daily",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("day", sa.Date, nullable=False),  # UTC
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
    sa.PrimaryKeyConstraint("account_id", "day", "key_name", "provider", "model_id", name="pk_inference_daily"),
)

# What the history never reads, kept out of its rows: the request's other inputs, the model
# resolution, ranges, breakdown and factor values, and the dataset versions (JSON).
inference_details = sa.Table(
    "inference_details",
    metadata,
    sa.Column("id", sa.String(36), sa.ForeignKey("inference_records.id"), primary_key=True),
    sa.Column("details", sa.Text, nullable=False),
)

# The signature of each record's tree (its group commit's batch tree, else a one-leaf tree; the record's leaf hash and
# the signed received_at), written in the record's transaction; the row lives
# apart from inference_records so the hot path keeps its narrow row. Read by the completeness proof of
# the emissions reports (reports.ledger).
inference_signatures = sa.Table(
    "inference_signatures",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # inference_records.id (no FK: deletions must be detectable)
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("application", sa.String(128), nullable=True),
    sa.Column("received_at", sa.String(40), nullable=False),  # the signed issued_at string
    sa.Column("leaf_sha256", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(80), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),
    sa.Index("ix_inference_signatures_account_id", "account_id"),
)
