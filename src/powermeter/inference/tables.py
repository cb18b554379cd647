"""Tables of the AI-inference capability: one row per recorded LLM request.

The key's name and masked form are copied into the row when it is written (keys cannot be renamed),
so the history is filtered and rendered without a join. The two indexes serve the history's two
access paths, newest first: (account, date) and (account, key name, date).
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

inference_records = sa.Table(
    "inference_records",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
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
    sa.Column("details", sa.Text, nullable=False),  # JSON: inputs, ranges, factors, dataset versions
    sa.Index("ix_inference_records_account_id_log_date", "account_id", "log_date", "seq"),
    sa.Index("ix_inference_records_account_id_key_name", "account_id", "key_name", "log_date", "seq"),
)
