"""Signed AI inference records: the canonical leaf of one record (pure).

An inference record is a leaf of an RFC 6962 tree signed in the transaction that stores it: the leaf
is the RFC 8785 JSON of the object below and the Ed25519 signature covers the usual tree head
(``merkle.tree_head_bytes``). Under group commit one tree holds a batch's records of one account and
month (``inference.service.seal_trees``); otherwise each record is a one-leaf tree (its hash is the
root). Reports rebuild the leaf from the stored row to prove that the row was neither edited nor removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from powermeter.methodology.canonical import canonical_bytes
from powermeter.methodology.merkle import leaf_hash

INFERENCE_RECORD_TYPE = "powermeter.inference-record/1"

LEAF_FIELDS = (
    "account_id", "application", "calculation_method", "co2_embodied_grams", "co2_grams", "co2_max_grams",
    "co2_min_grams", "co2_usage_grams", "energy_wh", "final_region", "id", "is_estimated", "model_id",
    "occurred_at", "provider", "received_at", "water_ml",
)  # fmt: skip


def inference_leaf(fields: Mapping[str, Any]) -> bytes:
    """The record's canonical bytes (every :data:`LEAF_FIELDS` member, plus ``type``)."""
    missing = [k for k in LEAF_FIELDS if k not in fields]
    if missing:
        raise ValueError(f"inference leaf needs {', '.join(missing)}")
    return canonical_bytes({**{k: fields[k] for k in LEAF_FIELDS}, "type": INFERENCE_RECORD_TYPE})


def inference_leaf_hash(fields: Mapping[str, Any]) -> bytes:
    return leaf_hash(inference_leaf(fields))
