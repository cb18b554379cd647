"""Tables of the audit log: per-account hash-chained entries, chain heads and signed checkpoints.

Entries are only ever inserted (the repository has no UPDATE or DELETE for them). The chain-head
row of an account is what concurrent appends lock, so each account's appends are serialised and
the chain never forks. Columns hold exactly the strings the entry hash covers
(``methodology.audit_chain``); ``details`` is canonical JSON text.
"""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

audit_chain_heads = sa.Table(
    "audit_chain_heads",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("checkpoints", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("action_type", sa.String(32), nullable=False),
    sa.Column("receipt_id", sa.String(64), nullable=True),
    sa.Column("actor_key_id", sa.String(40), nullable=True),
    sa.Column("actor_masked_key", sa.String(64), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("timestamp", sa.String(32), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_entries_account_receipt", "account_id", "receipt_id"),
    sa.Index("ix_audit_entries_account_action", "account_id", "action_type", "seq"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("number", sa.BigInteger, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("prev_checkpoint_hash", sa.String(64), nullable=True),
    sa.Column("signature", sa.String(200), nullable=False),
)
