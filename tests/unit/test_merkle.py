"""RFC 6962 Merkle trees / inclusion proofs and the signed tree head."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785

from powermeter.methodology.canonical import canonical_bytes
from powermeter.methodology.merkle import (
    MerkleTree,
    audit_paths,
    leaf_hash,
    merkle_root,
    node_hash,
    tree_head_bytes,
    verify_inclusion,
)

# The canonical encoder of leaves and tree heads is tested against the rfc8785 package in test_canonical.py.


# --- Merkle -------------------------------------------------------------------------------------


def _mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written recursively straight from the RFC, as an oracle."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(data[:k]) + _mth(data[k:])).digest()


def test_hashing_domain_separation() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert merkle_root([]) == hashlib.sha256(b"").digest()


def test_rfc6962_seven_leaf_example_audit_path_for_d0() -> None:
    # RFC 6962 §2.1.3: in the 7-leaf tree the audit path of d0 is [b, h, l].
    data = [bytes([i]) for i in range(7)]
    hashes = [leaf_hash(d) for d in data]
    root, paths = audit_paths(hashes)
    b = hashes[1]
    h = node_hash(hashes[2], hashes[3])
    l_ = node_hash(node_hash(hashes[4], hashes[5]), hashes[6])
    assert paths[0] == [b, h, l_]
    assert root == _mth(data)


@pytest.mark.parametrize("n", range(1, 71))
def test_every_leaf_of_trees_of_size_1_to_70_verifies(n: int) -> None:
    data = [f"receipt-{i}".encode() for i in range(n)]
    tree = MerkleTree(data)
    assert tree.root == _mth(data)
    assert merkle_root(tree.leaf_hashes) == tree.root  # the bottom-up root, as the write path computes it
    for i in range(n):
        proof = tree.proof(i)
        assert proof.verify(data[i])
        assert not proof.verify(data[i] + b"x")
        # a wrong index or a wrong root fails (the tree size is bound by the signed tree head)
        assert not verify_inclusion(tree.leaf_hashes[i], i + 1, n, proof.audit_path, tree.root)
        assert not verify_inclusion(tree.leaf_hashes[i], i, n, proof.audit_path, bytes(32))


def test_altering_any_byte_of_leaf_or_path_fails() -> None:
    data = [canonical_bytes({"receipt_id": f"rcpt_{i}", "kwh": i / 7}) for i in range(13)]
    tree = MerkleTree(data)
    proof = tree.proof(5)
    leaf = data[5]
    for pos in range(len(leaf)):
        tampered = bytearray(leaf)
        tampered[pos] ^= 0x01
        assert not proof.verify(bytes(tampered))
    for k, sibling in enumerate(proof.audit_path):
        for pos in (0, 31):
            bad = bytearray(sibling)
            bad[pos] ^= 0x80
            path = list(proof.audit_path)
            path[k] = bytes(bad)
            assert not verify_inclusion(leaf_hash(leaf), 5, 13, path, tree.root)
    assert not verify_inclusion(leaf_hash(leaf), 5, 13, list(proof.audit_path)[:-1], tree.root)
    assert not verify_inclusion(leaf_hash(leaf), 5, 13, [*proof.audit_path, bytes(32)], tree.root)


def test_proof_serialises_as_hex() -> None:
    tree = MerkleTree([b"a", b"b", b"c"])
    d = tree.proof(2).as_dict()
    assert d["leaf_index"] == 2
    assert d["tree_size"] == 3
    assert d["root"] == tree.root.hex()
    assert all(isinstance(h, str) and len(h) == 64 for h in d["audit_path"])  # type: ignore[attr-defined]


def test_tree_head_bytes_are_canonical() -> None:
    root = bytes(range(32))
    head = tree_head_bytes(root=root, tree_size=3, issued_at="2026-01-01T00:00:00Z", key_id="k1")
    assert head == canonical_bytes(json.loads(head)) == rfc8785.dumps(json.loads(head))
    assert json.loads(head)["root_sha256"] == root.hex()


def test_ten_thousand_leaf_tree_has_logarithmic_proofs() -> None:
    # Build time is measured by benchmarks/bench_batch.py, not asserted here (no wall-clock bounds in tests).
    data = [f"r{i}".encode() for i in range(10_000)]
    tree = MerkleTree(data)
    assert max(len(p) for p in tree.paths) == 14  # ceil(log2(10000))
    assert tree.proof(9_999).verify(data[9_999])
    assert tree.proof(0).verify(data[0])
