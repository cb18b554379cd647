"""Tables of the dashboard: server-side login sessions."""

from __future__ import annotations

import sqlalchemy as sa

from powermeter.infra.db import metadata

TS = sa.DateTime(timezone=True)

# One row per signed-in browser. ``id`` is SHA-256 of the cookie's random token, so a copy of the
# database does not hand out live sessions. ``csrf_token`` is the synchronizer token every form of
# this session must send back. A session ends at ``expires_at`` (absolute) or after the idle timeout
# (``last_seen_at``), or when the user logs out (the row is deleted).
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False, index=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
    # A key just created in Settings, encrypted for this session, shown once by the next GET (then cleared).
    sa.Column("pending_key", sa.String(600), nullable=True),
)
