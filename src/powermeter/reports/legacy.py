"""Anchoring records stored before ingest anchoring existed (``powermeter reports anchor``).

Receipt trees without a ``TREE_SIGNED`` audit entry get one (their signed head as stored, the
occurrence range of their receipts); inference records without a signature are signed now (received
time unknown: their booking time is used) and anchored. This attests the rows as they are at anchoring
time, which the audit entries' timestamps show; it cannot prove what happened to them before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from powermeter.audit.anchors import anchor_tree, iter_anchors
from powermeter.inference import repository as inference_repo
from powermeter.inference.service import sign_record
from powermeter.infra.security import Signer
from powermeter.jobs import repository as jobs_repo
from powermeter.methodology.occurrence import format_instant, parse_instant
from powermeter.reports.ledger import inference_fields, inference_rows

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def anchor_legacy(conn: Connection, signer: Signer, account_id: str, now: datetime) -> tuple[int, int]:
    """(receipt trees anchored, inference records signed and anchored)."""
    anchored = {a.tree_id for a in iter_anchors(conn, account_id)}
    n_trees = 0
    for t in jobs_repo.trees_of_account(conn, account_id):
        if t.tree_id in anchored:
            continue
        det = orjson.loads(t.details)
        issued = parse_instant(t.issued_at)
        rows = jobs_repo.tree_receipt_rows(conn, t.seq)
        moments = []
        for r in rows:
            opts = orjson.loads(r.options) if r.options else {}
            started = opts.get("started_at") if isinstance(opts, dict) else None
            moments.append(
                parse_instant(started)
                if isinstance(started, str)
                else issued - timedelta(minutes=float(det["duration_minutes"][r.leaf_index]))
            )
        if not moments:
            moments = [issued]
        ids = sorted(r.receipt_id for r in rows)
        prefix = ids[0][:21] if ids else ""
        anchor_tree(
            conn, account_id=account_id, now=now, kind="receipt_tree", tree_id=t.tree_id, root_hex=t.root_sha256,
            tree_size=t.tree_size, issued_at=t.issued_at, key_id=t.key_id, signature=t.signature,
            occurred=(format_instant(min(moments)), format_instant(max(moments))),
            ids={"receipt_id_prefix": prefix, "receipt_id_width": len(ids[0]) - 21 if ids else 4,
                 "anchored_after_ingest": True},
        )  # fmt: skip
        n_trees += 1
    signed = inference_repo.signed_ids(conn, account_id)
    unsigned = sorted(i for i in inference_repo.record_ids(conn, account_id) if i not in signed)
    n_inf = 0
    for k in range(0, len(unsigned), 500):
        for row in inference_rows(conn, account_id, unsigned[k : k + 500]):
            fields = inference_fields(row, account_id, format_instant(row.log_date))
            if fields is None:
                continue  # no details: stays a problem in every report
            fields.pop("_details")
            sign_record(conn, account_id, signer, now, fields)
            n_inf += 1
    return n_trees, n_inf
