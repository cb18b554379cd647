"""Anchoring signed tree heads in the account's audit chain at ingest (completeness proof).

Every signed tree of records (a compute-job request's receipt tree; a group commit's AI
inference records of one account and month, or one inference record elsewhere) has one ``TREE_SIGNED``
entry carrying the signed tree head, the occurrence-time range of its leaves and how to name its
records. A report then lists every tree whose range meets its period and
accounts for every leaf (``powermeter.reports.ledger``); a deleted, edited or added record no longer
matches the anchored head and ``powermeter reports verify`` names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from powermeter.audit import repository as repo
from powermeter.audit import service as audit
from powermeter.methodology.audit_chain import ActionType

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ACTION = ActionType.TREE_SIGNED.value
KINDS = ("receipt_tree", "inference_record", "inference_tree")


def anchor_tree(
    conn: Connection,
    *,
    account_id: str,
    now: datetime,
    kind: str,
    tree_id: str,
    root_hex: str,
    tree_size: int,
    issued_at: str,
    key_id: str,
    signature: str,
    occurred: tuple[str, str],
    ids: Mapping[str, Any],
) -> None:
    """Append the ``TREE_SIGNED`` entry of one signed tree, in the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown tree kind {kind!r}")
    audit.append(
        conn,
        account_id=account_id,
        action_type=ACTION,
        details={
            "object": kind,
            "tree_id": tree_id,
            "root_sha256": root_hex,
            "tree_size": tree_size,
            "issued_at": issued_at,
            "key_id": key_id,
            "signature": signature,
            "occurred_from": occurred[0],
            "occurred_to": occurred[1],
            **ids,
        },
        now=now,
    )


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    entry_hash: str
    details: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.details.get("object"))

    @property
    def tree_id(self) -> str:
        return str(self.details.get("tree_id"))


def iter_anchors(conn: Connection, account_id: str) -> Iterator[Anchor]:
    """The account's ``TREE_SIGNED`` entries, in chain order."""
    for seq, entry_hash, details in repo.entries_of_type(conn, account_id, ACTION):
        body = orjson.loads(details)
        if isinstance(body, dict):
            yield Anchor(int(seq), str(entry_hash), body)
