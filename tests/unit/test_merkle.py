"""RFC 8785 canonical JSON and RFC 6962 Merkle trees / inclusion proofs."""

from __future__ import annotations

import hashlib
import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology.merkle import (
    MerkleTree,
    audit_paths,
    canonical_json,
    leaf_hash,
    merkle_root,
    node_hash,
    tree_head_bytes,
    verify_inclusion,
)


def _double(bits: int) -> float:
    return float(struct.unpack(">d", bits.to_bytes(8, "big"))[0])


# RFC 8785 Appendix B: IEEE-754 bit patterns and their required serialisation.
RFC8785_NUMBERS = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_rfc8785_number_vectors(bits: int, expected: str) -> None:
    assert canonical_json(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN"):
        canonical_json({"x": bad})


def test_rfc8785_section_3_2_2_example() -> None:
    # The example of RFC 8785 §3.2.2 (property sorting, numbers, string escaping, literals).
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = [k for k, _ in json.loads(canonical_json(value)).items()]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_string_escapes_and_literals() -> None:
    assert canonical_json("a\u2028\u0007\u001f\t\b") == '"a\u2028\\u0007\\u001f\\t\\b"'.encode()
    assert canonical_json("\ud800") == b'"\\ud800"'  # lone surrogate, as JSON.stringify writes it
    assert canonical_json([1, -2, 2**53, None, True, False, (1.5,)]) == b"[1,-2,9007199254740992,null,true,false,[1.5]]"
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_json(2**53 + 1)
    with pytest.raises(TypeError):
        canonical_json({1: "x"})
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


def _as_numbers(value: object) -> object:
    """JSON has one number type: compare every number as a double (and -0 as 0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value) + 0.0
    if isinstance(value, dict):
        return {k: _as_numbers(v) for k, v in value.items()}
    assert isinstance(value, list | tuple)
    return [_as_numbers(v) for v in value]


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_canonical_json_round_trips_and_is_idempotent(value: object) -> None:
    encoded = canonical_json(value)
    decoded = json.loads(encoded, parse_int=float)
    assert decoded == _as_numbers(value)
    assert canonical_json(decoded) == encoded


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
    data = [canonical_json({"receipt_id": f"rcpt_{i}", "kwh": i / 7}) for i in range(13)]
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
    assert head == canonical_json(json.loads(head))
    assert json.loads(head)["root_sha256"] == root.hex()


def test_ten_thousand_leaf_tree_has_logarithmic_proofs() -> None:
    # Build time is measured by benchmarks/bench_batch.py, not asserted here (no wall-clock bounds in tests).
    data = [f"r{i}".encode() for i in range(10_000)]
    tree = MerkleTree(data)
    assert max(len(p) for p in tree.paths) == 14  # ceil(log2(10000))
    assert tree.proof(9_999).verify(data[9_999])
    assert tree.proof(0).verify(data[0])
