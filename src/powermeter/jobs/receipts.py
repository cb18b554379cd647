"""Receipts: their canonical leaf bytes, the document a client keeps, and offline verification.

A receipt is the JSON object below, serialised with RFC 8785 (keys sorted, numbers in ECMAScript
form). Its bytes are a leaf of the request's Merkle tree (RFC 6962 hashing); the tree head is signed
with Ed25519. Leaves are assembled from pre-serialised fragments (the factor profile is shared by
every job with the same constants), each made by :mod:`powermeter.methodology.canonical`, which gives
exactly ``canonical_bytes(receipt)`` at a fraction of the cost; ``tests/integration/jobs`` checks the two
agree.

Receipt object (keys in canonical order)::

    account_id, dataset_versions{hardware, locations}, factors[...], inputs{...}, issued_at, job_id,
    location, methodology{id, version}, receipt_id, results{breakdown{...}, co2_grams, kwh}, type,
    warnings[...]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from powermeter.infra.security import verify_signature
from powermeter.methodology.canonical import canonical_bytes, number_fragments, string_bytes
from powermeter.methodology.compute_job import METHOD_ID, METHODOLOGY_VERSION
from powermeter.methodology.merkle import TREE_HEAD_TYPE, leaf_hash, tree_head_bytes, verify_inclusion
from powermeter.methodology.units import Factor

RECEIPT_TYPE = "powermeter.receipt/1"
DOCUMENT_TYPE = "powermeter.receipt-document/1"
SIGNATURE_ALGORITHM = "Ed25519"
METHODOLOGY = {"id": METHOD_ID, "version": METHODOLOGY_VERSION}
METHODOLOGY_FRAGMENT = b',"methodology":' + canonical_bytes(METHODOLOGY)

#: Optional inputs of a job (overrides); the base inputs are always present.
OPTION_FIELDS: tuple[str, ...] = (
    "cpu_model", "gpu_model", "cpu_utilization", "gpu_utilization", "pue", "provider", "region",
    "ownership", "site", "started_at", "application",
    "measured_cpu_kwh", "measured_memory_kwh", "measured_gpu_kwh",
)  # fmt: skip

_BASE_FIELDS = frozenset({"job_id", "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores", "geo_iso"})


def job_options(job: Any) -> dict[str, Any] | None:
    """The job's overrides that were given (``None`` when there are none: the common case)."""
    fields_set = getattr(job, "model_fields_set", None)
    if fields_set is not None and fields_set <= _BASE_FIELDS:
        return None  # a validated request model that set no override (fast path)
    out = {name: v for name in OPTION_FIELDS if (v := getattr(job, name, None)) is not None}
    return out or None


def inputs_bytes(
    duration_minutes: float, cpu_cores: float, memory_gb: float, gpu_cores: float, geo_iso: str,
    options: Mapping[str, Any] | None,
) -> bytes:  # fmt: skip
    """Canonical JSON of a job's inputs (the same bytes from a request or from a stored row)."""
    if options is None:
        parts = number_fragments((float(cpu_cores), float(duration_minutes), float(gpu_cores), float(memory_gb)))
        if parts is not None:
            return _INPUTS % (parts[0], parts[1], string_bytes(geo_iso), parts[2], parts[3])
    raw: dict[str, Any] = {
        "cpu_cores": cpu_cores, "duration_minutes": duration_minutes, "geo_iso": geo_iso, "gpu_cores": gpu_cores,
        "memory_gb": memory_gb,
    }  # fmt: skip
    if options:
        raw.update(options)
    return canonical_bytes(raw)


_RESULTS = (
    b'{"breakdown":{"cpu_kwh":%b,"gpu_kwh":%b,"memory_kwh":%b,"overhead_kwh":%b,"pue":%b},"co2_grams":%b,"kwh":%b}'
)
_INPUTS = b'{"cpu_cores":%b,"duration_minutes":%b,"geo_iso":%b,"gpu_cores":%b,"memory_gb":%b}'


def results_bytes(
    kwh: float, co2_g: float, cpu_kwh: float, gpu_kwh: float, memory_kwh: float, pue: float,
    energy_sources: Mapping[str, Any] | None = None,
) -> bytes:  # fmt: skip
    """Canonical JSON of a receipt's results; ``energy_sources`` (measured vs modelled per component)
    only when the job carried a measurement (absent: every component modelled)."""
    overhead = kwh - (cpu_kwh + gpu_kwh + memory_kwh)
    if energy_sources is None:
        parts = number_fragments((cpu_kwh, gpu_kwh, memory_kwh, overhead, pue, co2_g, kwh))
        if parts is not None:
            return _RESULTS % tuple(parts)
    out: dict[str, Any] = {
        "breakdown": {
            "cpu_kwh": cpu_kwh, "gpu_kwh": gpu_kwh, "memory_kwh": memory_kwh, "overhead_kwh": overhead, "pue": pue,
        },
        "co2_grams": co2_g,
        "kwh": kwh,
    }  # fmt: skip
    if energy_sources is not None:
        out["energy_sources"] = dict(energy_sources)
    return canonical_bytes(out)


@dataclass(frozen=True, slots=True)
class ProfileDoc:
    """The part of a receipt shared by every job with the same constants, stored once."""

    id: str  # sha256 hex of ``body``
    body: str  # canonical JSON {dataset_versions, factors, location, warnings}
    head: bytes  # ',"dataset_versions":…,"factors":[…]'
    location: bytes  # ',"location":"…"'
    tail: bytes  # ',"type":"powermeter.receipt/1","warnings":[…]}'


def make_profile_doc(
    factors: Sequence[Factor], location_code: str, dataset_versions: Mapping[str, str], warnings: Sequence[str]
) -> ProfileDoc:
    body = {
        "dataset_versions": dict(dataset_versions),
        "factors": [f.as_dict() for f in factors],
        "location": location_code,
        "warnings": list(warnings),
    }
    return profile_doc_from_body(canonical_bytes(body).decode())


def profile_doc_from_body(body: str) -> ProfileDoc:
    obj = json.loads(body)
    return ProfileDoc(
        id=hashlib.sha256(body.encode()).hexdigest(),
        body=body,
        head=b',"dataset_versions":'
        + canonical_bytes(obj["dataset_versions"])
        + b',"factors":'
        + canonical_bytes(obj["factors"]),
        location=b',"location":' + canonical_bytes(obj["location"]),
        tail=b',"type":' + canonical_bytes(RECEIPT_TYPE) + b',"warnings":' + canonical_bytes(obj["warnings"]) + b"}",
    )


class LeafBuilder:
    """Builds (and hashes) one request's receipts. Everything before ``inputs`` in a receipt is the
    same for every job of one profile, so its SHA-256 state is computed once and copied per leaf."""

    __slots__ = ("_account", "_profiles", "issued", "locations", "states", "tails")

    def __init__(self, account_id: str, issued_at: str, profiles: Sequence[ProfileDoc]) -> None:
        self._account = b'{"account_id":' + string_bytes(account_id)
        self._profiles = list(profiles)
        # public for the batch loop (``service._encode``), which inlines :meth:`_suffix`
        self.issued = b',"issued_at":' + string_bytes(issued_at)
        self.states = [hashlib.sha256(b"\x00" + self._account + p.head) for p in self._profiles]
        self.locations = [p.location + METHODOLOGY_FRAGMENT + b',"receipt_id":' for p in self._profiles]
        self.tails = [p.tail for p in self._profiles]

    def _suffix(self, j: int, inputs: bytes, job_id: str, receipt_id: str, results: bytes) -> bytes:
        return b"".join(
            (
                b',"inputs":', inputs, self.issued, b',"job_id":', string_bytes(job_id), self.locations[j],
                string_bytes(receipt_id), b',"results":', results, self.tails[j],
            )
        )  # fmt: skip

    def leaf_hash(self, j: int, inputs: bytes, job_id: str, receipt_id: str, results: bytes) -> bytes:
        """``SHA-256(0x00 || leaf)`` of the receipt (RFC 6962 leaf hash)."""
        h = self.states[j].copy()
        h.update(self._suffix(j, inputs, job_id, receipt_id, results))
        return h.digest()

    def leaf(self, j: int, inputs: bytes, job_id: str, receipt_id: str, results: bytes) -> bytes:
        """The receipt's canonical JSON bytes (the leaf data)."""
        return self._account + self._profiles[j].head + self._suffix(j, inputs, job_id, receipt_id, results)


def signed_tree_head(*, root: bytes, tree_size: int, issued_at: str, key_id: str, signature_b64: str) -> dict[str, Any]:
    return {
        "type": TREE_HEAD_TYPE,
        "root_sha256": root.hex(),
        "tree_size": tree_size,
        "issued_at": issued_at,
        "key_id": key_id,
        "algorithm": SIGNATURE_ALGORITHM,
        "signature": signature_b64,
    }


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    reason: str
    receipt_id: str | None = None


def key_id_of(public_key_pem: str | bytes) -> str:
    """``ed25519:<16 hex>``: the id the server gives its key (sha256 of the raw public key)."""
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


DOCUMENT_KEYS = frozenset(
    {"type", "receipt_id", "job_id", "kwh", "co2_grams", "timestamp", "receipt", "proof", "signed_tree_head"}
)
PROOF_KEYS = frozenset({"leaf_index", "tree_size", "audit_path", "root_sha256"})
HEAD_KEYS = frozenset({"type", "root_sha256", "tree_size", "issued_at", "key_id", "algorithm", "signature"})
_HEX32 = re.compile(r"[0-9a-f]{64}")


def _unwrap(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    # Accept the API response as saved ({"status": "success", "data": {...}}) or its data object.
    if set(doc) == {"status", "data"} and isinstance(doc["data"], Mapping):
        if doc["status"] != "success":
            raise ValueError("the saved response is not a success")
        return doc["data"]
    return doc


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise ValueError("hashes must be 64 lower-case hex digits")
    return bytes.fromhex(value)


def verify_document(doc: Mapping[str, Any], public_key_pem: str | bytes) -> Verification:
    """Check a saved receipt offline: leaf → audit path → root → Ed25519 signature of the tree head.

    Returns the first failure, in the order a person would check, or ``ok``.
    """
    try:
        d = _unwrap(doc)
        receipt = d["receipt"]
        proof = d["proof"]
        head = d["signed_tree_head"]
        if not isinstance(receipt, Mapping):
            return Verification(False, "the 'receipt' member is not a JSON object")
        rid = receipt.get("receipt_id")
        rid = rid if isinstance(rid, str) else None
        if set(d) != DOCUMENT_KEYS or d["type"] != DOCUMENT_TYPE:
            return Verification(False, f"not a {DOCUMENT_TYPE} document (unexpected or missing members)", rid)
        if set(proof) != PROOF_KEYS or set(head) != HEAD_KEYS:
            return Verification(False, "the proof or the signed tree head has unexpected or missing members", rid)
        if receipt.get("type") != RECEIPT_TYPE:
            return Verification(False, f"unsupported receipt type {receipt.get('type')!r}", rid)
        if head.get("type") != TREE_HEAD_TYPE or head.get("algorithm") != SIGNATURE_ALGORITHM:
            return Verification(False, "unsupported tree head type or signature algorithm", rid)
        leaf = canonical_bytes(receipt)
        path = [_hex32(h) for h in proof["audit_path"]]
        root = _hex32(head["root_sha256"])
        size, index = head["tree_size"], proof["leaf_index"]
        if not all(type(v) is int for v in (size, index, proof["tree_size"])):
            return Verification(False, "tree_size and leaf_index must be integers", rid)
        if proof["root_sha256"] != head["root_sha256"] or proof["tree_size"] != size:
            return Verification(False, "the proof is for another tree than the signed tree head", rid)
        if not verify_inclusion(leaf_hash(leaf), index, size, path, root):
            return Verification(
                False, "the receipt does not hash to the signed Merkle root (receipt or proof altered)", rid
            )
        if receipt.get("issued_at") != head["issued_at"]:
            return Verification(False, "the receipt's issued_at differs from the signed tree head's", rid)
        try:
            expected_key_id = key_id_of(public_key_pem)
        except ValueError as exc:
            return Verification(False, f"unusable public key: {exc}", rid)
        if head["key_id"] != expected_key_id:
            return Verification(
                False, f"signed with key {head['key_id']}, but the public key given is {expected_key_id}", rid
            )
        message = tree_head_bytes(root=root, tree_size=size, issued_at=head["issued_at"], key_id=head["key_id"])
        signature = base64.b64decode(head["signature"], validate=True)
        if base64.b64encode(signature).decode() != head["signature"]:
            return Verification(False, "the signature is not in canonical base64", rid)
        if not verify_signature(public_key_pem, message, signature):
            return Verification(False, "the tree head signature does not verify with this public key", rid)
        results = receipt.get("results", {})
        signed = {
            "receipt_id": rid,
            "job_id": receipt.get("job_id"),
            "kwh": results.get("kwh"),
            "co2_grams": results.get("co2_grams"),
            "timestamp": head["issued_at"],
        }
        for name, value in signed.items():
            if d[name] != value or type(d[name]) is not type(value):
                return Verification(False, f"the document's {name} differs from the signed receipt's", rid)
        return Verification(True, "valid: receipt included in the signed Merkle tree", rid)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return Verification(False, f"malformed receipt document: {type(exc).__name__}: {exc}")
