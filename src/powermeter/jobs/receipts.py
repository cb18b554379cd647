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
from itertools import repeat
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from powermeter.infra.security import verify_signature
from powermeter.methodology.canonical import (
    canonical_bytes,
    number_fragments,
    number_texts,
    string_bytes,
    string_fragments,
)
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

#: The fields every job has; a job that sets no other field has no overrides (and no measurement).
BASE_FIELDS = frozenset({"job_id", "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores", "geo_iso"})
_BASE_FIELDS = BASE_FIELDS


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


# The constant pieces of the two templates, for the column-wise encoder (the same templates, split at ``%b``).
_IN = _INPUTS.split(b"%b")  # '{"cpu_cores":', ',"duration_minutes":', ',"geo_iso":', ',"gpu_cores":', ...
_RES = _RESULTS.split(b"%b")  # '{"breakdown":{"cpu_kwh":', ',"gpu_kwh":', ...


def plain_leaf_hashes(
    builder: LeafBuilder,
    receipt_ids: Sequence[str],
    job_ids: Sequence[str],
    geo_iso: Sequence[str],
    duration_minutes: Sequence[float],
    cpu_cores: Sequence[float],
    memory_gb: Sequence[float],
    gpu_cores: Sequence[float],
    kwh: Sequence[float],
    co2_g: Sequence[float],
    cpu_kwh: Sequence[float],
    gpu_kwh: Sequence[float],
    memory_kwh: Sequence[float],
    profile_index: Sequence[int],
    pues: Sequence[float],
) -> list[bytes]:
    """The leaf hashes of a batch of jobs without overrides or measurements, built column by column.

    Each number column is written by one orjson call and each string column by one more
    (:func:`~powermeter.methodology.canonical.number_texts`, ``string_fragments``; the few values
    orjson writes otherwise go through the RFC 8785 encoder one by one); every leaf's suffix is then
    joined from the pieces in C (``map``/``zip``/``bytes.join``) and hashed on a copy of its profile's
    SHA-256 prefix state. The bytes are those of :meth:`LeafBuilder.leaf` with :func:`inputs_bytes`
    and :func:`results_bytes` (a property test holds them equal). ``pues`` is indexed by profile.
    """
    overhead = [e - (c + g + m) for e, c, g, m in zip(kwh, cpu_kwh, gpu_kwh, memory_kwh, strict=True)]
    c_cores, c_dur, c_gpus, c_mem, c_cpu_kwh, c_gpu_kwh, c_mem_kwh, c_over, c_co2, c_kwh, c_pue = (
        number_texts(col)
        for col in (
            list(map(float, cpu_cores)), list(map(float, duration_minutes)), list(map(float, gpu_cores)),
            list(map(float, memory_gb)), cpu_kwh, gpu_kwh, memory_kwh, overhead, co2_g, kwh, pues,
        )
    )  # fmt: skip
    n = len(receipt_ids)
    if any(len(c) != n for c in (job_ids, geo_iso, profile_index, c_cores, c_dur, c_gpus, c_mem, c_co2, c_kwh)):
        raise ValueError("the columns of a batch differ in length")
    # the job id's closing quote, its profile's ',"location":…,"receipt_id":', the receipt id's opening quote
    locations = [b'"' + loc + b'"' for loc in builder.locations]
    tails = [_RES[7] + tail for tail in builder.tails]
    r = repeat
    suffixes = map(
        b"".join,
        zip(
            r(b',"inputs":' + _IN[0]), c_cores, r(_IN[1]), c_dur, r(_IN[2] + b'"'), string_fragments(geo_iso),
            r(b'"' + _IN[3]), c_gpus, r(_IN[4]), c_mem, r(_IN[5] + builder.issued + b',"job_id":"'),
            string_fragments(job_ids), map(locations.__getitem__, profile_index), string_fragments(receipt_ids),
            r(b'","results":' + _RES[0]), c_cpu_kwh, r(_RES[1]), c_gpu_kwh, r(_RES[2]), c_mem_kwh, r(_RES[3]),
            c_over, r(_RES[4]), map(c_pue.__getitem__, profile_index), r(_RES[5]), c_co2, r(_RES[6]), c_kwh,
            map(tails.__getitem__, profile_index),
            strict=False,  # the constant pieces repeat forever; the columns' lengths are checked above
        ),
    )  # fmt: skip
    states = builder.states
    hashes: list[bytes] = []
    add = hashes.append
    for j, suffix in zip(profile_index, suffixes, strict=False):  # suffixes: a lazy map, as long
        h = states[j].copy()
        h.update(suffix)
        add(h.digest())
    return hashes


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


def _same_json_value(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by value (the canonical form writes an integral double without
    ``.0``, so a receipt's ``0`` parses as an ``int`` where the document's ``0.0`` is a ``float``),
    anything else by type and value (``"1"`` is not ``1``, ``true`` is not ``1``)."""
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


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
            if not _same_json_value(d[name], value):
                return Verification(False, f"the document's {name} differs from the signed receipt's", rid)
        return Verification(True, "valid: receipt included in the signed Merkle tree", rid)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return Verification(False, f"malformed receipt document: {type(exc).__name__}: {exc}")
