"""Merkle trees with inclusion proofs (RFC 6962 / RFC 9162 hashing).

Pure. A receipt is serialised with :func:`powermeter.methodology.canonical.canonical_bytes` (RFC 8785);
the bytes are a leaf of a per-request Merkle tree; the tree head (root, size, time, key id) is serialised
canonically too and signed (Ed25519) by the caller. Anyone holding one receipt, its audit path and the
signed tree head can check it offline.

Merkle hashing (RFC 6962 §2.1): ``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || l || r)``,
the tree over ``n`` leaves splits at the largest power of two ``k < n``. Audit paths list siblings
from the leaf up; verification follows RFC 9162 §2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from powermeter.methodology.canonical import canonical_bytes

__all__ = [
    "TREE_HEAD_TYPE",
    "InclusionProof",
    "MerkleTree",
    "audit_paths",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "tree_head_bytes",
    "verify_inclusion",
]

TREE_HEAD_TYPE = "powermeter.receipt-tree-head/1"


# --- Merkle trees -------------------------------------------------------------------------------

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash over already-hashed leaves (``SHA-256()`` for an empty tree).

    Computed bottom-up: pair neighbours, carry an odd last node up unchanged. This gives the same
    tree as RFC 6962's split at the largest power of two below n (the tree is left-complete), in
    one pass per level without recursion.
    """
    if not leaf_hashes:
        return _sha256(b"").digest()
    level = list(leaf_hashes)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if odd is not None:
            level.append(odd)
    return level[0]


def audit_paths(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """Root and the audit path of every leaf, in O(n log n) total: one pass over the tree that
    appends each subtree's root to the paths of the leaves on the other side."""
    n = len(leaf_hashes)
    if n == 0:
        return _sha256(b"").digest(), []
    paths: list[list[bytes]] = [[] for _ in range(n)]

    def build(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        mid = lo + _split(hi - lo)
        left = build(lo, mid)
        right = build(mid, hi)
        for i in range(lo, mid):
            paths[i].append(right)
        for i in range(mid, hi):
            paths[i].append(left)
        return node_hash(left, right)

    return build(0, n), paths


def verify_inclusion(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove that ``leaf`` (a leaf hash) is entry ``index`` of
    the tree of ``tree_size`` leaves whose root is ``root``?"""
    if not (0 <= index < tree_size):
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if len(p) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    audit_path: tuple[bytes, ...]
    root: bytes

    def as_dict(self) -> dict[str, object]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "audit_path": [h.hex() for h in self.audit_path],
            "root": self.root.hex(),
        }

    def verify(self, leaf_data: bytes) -> bool:
        return verify_inclusion(leaf_hash(leaf_data), self.leaf_index, self.tree_size, self.audit_path, self.root)


class MerkleTree:
    """A tree over leaf *data* (e.g. canonical receipts), with every leaf's proof."""

    __slots__ = ("leaf_hashes", "paths", "root")

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaf_hashes = [leaf_hash(d) for d in leaves]
        self.root, self.paths = audit_paths(self.leaf_hashes)

    def __len__(self) -> int:
        return len(self.leaf_hashes)

    def proof(self, index: int) -> InclusionProof:
        return InclusionProof(index, len(self.leaf_hashes), tuple(self.paths[index]), self.root)


def tree_head_bytes(*, root: bytes, tree_size: int, issued_at: str, key_id: str) -> bytes:
    """The exact bytes that are signed for a tree: canonical JSON of the tree head."""
    return canonical_bytes(
        {
            "type": TREE_HEAD_TYPE,
            "root_sha256": root.hex(),
            "tree_size": tree_size,
            "issued_at": issued_at,
            "key_id": key_id,
        }
    )
