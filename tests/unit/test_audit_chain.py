"""The audit hash chain: canonical encoding, tamper detection, checkpoints."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology.audit_chain import (
    GENESIS_HASH,
    ROW_FIELDS,
    AuditEntry,
    BreakKind,
    Checkpoint,
    canonical_json,
    chain_entry,
    entry_bytes,
    format_timestamp,
    next_checkpoint,
    parse_json,
    verify_chain,
)

ACCOUNT = "acct_1"
Row = tuple[Any, ...]

# ---------------------------------------------------------------- RFC 8785 canonical JSON

# The encoder itself is tested byte for byte against the rfc8785 package in test_canonical.py; the chain
# uses it in its strict form (lone surrogates refused, so any JCS library re-derives the hashes).


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, 2**53 + 1, Decimal("1.5"), {1: "x"}, "\ud800", {"k": object()}],
)
def test_values_without_one_canonical_form_are_refused(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json(bad)


def test_parsed_json_canonicalises_big_integers_as_doubles() -> None:
    assert canonical_json(parse_json("[67145854434663456, 1, 1.50]")) == "[67145854434663460,1,1.5]"


# ---------------------------------------------------------------- entries

ids = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)
opt_ids = st.none() | ids
details_st = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10) | st.floats(-1e6, 1e6),
    max_size=4,
)


@settings(max_examples=300)
@given(
    account=ids,
    seq=st.integers(1, 2**53 - 1),
    entry_id=ids,
    action=ids,
    receipt=opt_ids,
    key_id=opt_ids,
    masked=opt_ids,
    details=details_st,
    ts=ids,
    prev=ids,
)
def test_hashed_bytes_are_the_rfc8785_form_of_the_entry_object(
    account: str,
    seq: int,
    entry_id: str,
    action: str,
    receipt: str | None,
    key_id: str | None,
    masked: str | None,
    details: dict[str, Any],
    ts: str,
    prev: str,
) -> None:
    """A third party re-derives every hash with any JCS library from the exported entry."""
    entry = chain_entry(
        account_id=account,
        seq=seq,
        entry_id=entry_id,
        action_type=action,
        receipt_id=receipt,
        actor_key_id=key_id,
        actor_masked_key=masked,
        details=details,
        timestamp=ts,
        prev_hash=prev,
    )
    exported = entry.as_json()
    del exported["entry_hash"]
    canonical = canonical_json(exported).encode()
    assert canonical == rfc8785.dumps(exported)  # the reference implementation's bytes
    assert hashlib.sha256(canonical).hexdigest() == entry.entry_hash
    # For these value types (no floats at top level), JCS is sorted, compact, non-ASCII-escaping JSON.
    if not any(isinstance(v, float) for v in details.values()):
        stdlib = json.dumps(exported, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if all(k.isascii() for k in details):
            assert stdlib.encode() == canonical


def test_entry_hash_golden_vector() -> None:
    """Pins the wire format: changing it breaks every verifier holding an export."""
    entry = chain_entry(
        account_id="acct_1",
        seq=1,
        entry_id="audit_12345",
        action_type="VIEW",
        receipt_id="rcpt_abc123",
        actor_key_id="key_1",
        actor_masked_key="pm_live_abcd…wxyz",
        details={"via": "api"},
        timestamp="2024-06-27T14:30:00.000Z",
        prev_hash=GENESIS_HASH,
    )
    assert (
        entry_bytes(
            account_id="acct_1",
            seq=1,
            entry_id="audit_12345",
            action_type="VIEW",
            receipt_id="rcpt_abc123",
            actor_key_id="key_1",
            actor_masked_key="pm_live_abcd…wxyz",
            details_json='{"via":"api"}',
            timestamp="2024-06-27T14:30:00.000Z",
            prev_hash=GENESIS_HASH,
        )
        == (
            '{"account_id":"acct_1","action_type":"VIEW","actor_key_id":"key_1",'
            '"actor_masked_key":"pm_live_abcd…wxyz","details":{"via":"api"},"id":"audit_12345",'
            f'"prev_hash":"{GENESIS_HASH}","receipt_id":"rcpt_abc123","seq":1,'
            '"timestamp":"2024-06-27T14:30:00.000Z","v":1}'
        ).encode()
    )
    assert (
        entry.entry_hash
        == hashlib.sha256(
            entry_bytes(
                account_id="acct_1",
                seq=1,
                entry_id="audit_12345",
                action_type="VIEW",
                receipt_id="rcpt_abc123",
                actor_key_id="key_1",
                actor_masked_key="pm_live_abcd…wxyz",
                details_json='{"via":"api"}',
                timestamp="2024-06-27T14:30:00.000Z",
                prev_hash=GENESIS_HASH,
            )
        ).hexdigest()
    )


def test_timestamps_are_utc_milliseconds_with_z() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2024, 6, 27, 16, 30, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2024-06-27T14:30:00.987Z"
    with pytest.raises(ValueError):
        format_timestamp(datetime(2024, 6, 27))


def test_row_layout_matches_the_entry() -> None:
    e = build_chain(1)[0]
    assert dict(zip(ROW_FIELDS, e.row(), strict=True))["details"] == e.details_json


# ---------------------------------------------------------------- chains and tampering


def build_chain(n: int, account: str = ACCOUNT, start_prev: str = GENESIS_HASH, first_seq: int = 1) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = start_prev
    actions = ["VIEW", "DOWNLOAD", "EDIT", "KEY_CREATED"]
    for i in range(first_seq, first_seq + n):
        e = chain_entry(
            account_id=account,
            seq=i,
            entry_id=f"audit_{i:06d}",
            action_type=actions[i % 4],
            receipt_id=None if i % 4 == 3 else f"rcpt_{i:04d}",
            actor_key_id="key_1",
            actor_masked_key="pm_live_ab…yz",
            details={"n": i} if i % 2 else {},
            timestamp=f"2024-06-27T14:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            prev_hash=prev,
        )
        entries.append(e)
        prev = e.entry_hash
    return entries


def rows_of(entries: list[AuditEntry]) -> list[Row]:
    return [e.row() for e in entries]


def forge(rows: list[Row], seq: int, prev: str, entry_id: str = "audit_forged") -> Row:
    """An entry with a correct hash, as someone with database access could write."""
    return chain_entry(
        account_id=ACCOUNT,
        seq=seq,
        entry_id=entry_id,
        action_type="VIEW",
        receipt_id="rcpt_forged",
        actor_key_id="key_1",
        actor_masked_key="pm_live_ab…yz",
        details={},
        timestamp="2024-06-27T15:00:00.000Z",
        prev_hash=prev,
    ).row()


def by_seq(rows: list[Row]) -> list[Row]:
    """What ``ORDER BY seq`` returns (ties keep insertion order)."""
    return sorted(rows, key=lambda r: r[0])


def test_an_untouched_chain_verifies() -> None:
    entries = build_chain(50)
    report = verify_chain(ACCOUNT, rows_of(entries))
    assert report.ok
    assert report.entries_checked == 50
    assert report.verified_through_seq == 50
    assert report.head_seq == 50
    assert report.head_hash == entries[-1].entry_hash


def test_an_empty_chain_verifies() -> None:
    report = verify_chain(ACCOUNT, [])
    assert report.ok
    assert (report.entries_checked, report.head_seq, report.head_hash) == (0, 0, GENESIS_HASH)


def test_entries_of_another_account_do_not_verify() -> None:
    report = verify_chain("acct_2", rows_of(build_chain(3)))
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.entry_id == "audit_000001"


def replace_field(row: Row, index: int, value: Any) -> Row:
    out = list(row)
    out[index] = value
    return tuple(out)


def other_value(field: str, value: Any) -> Any:
    if field == "seq":
        return value + 1000
    if value is None:
        return "x"
    if field == "details":
        return '{"n":-1}'
    if field in ("prev_hash", "entry_hash"):
        return hashlib.sha256(value.encode()).hexdigest()
    return value + "x"


@settings(max_examples=200)
@given(n=st.integers(1, 30), data=st.data())
def test_changing_any_field_of_any_entry_is_detected_and_named(n: int, data: st.DataObject) -> None:
    rows = rows_of(build_chain(n))
    k = data.draw(st.integers(0, n - 1), label="entry")
    f = data.draw(st.integers(0, len(ROW_FIELDS) - 1), label="field")
    tampered = list(rows)
    tampered[k] = replace_field(rows[k], f, other_value(ROW_FIELDS[f], rows[k][f]))
    for stored in (tampered, by_seq(tampered)):
        report = verify_chain(ACCOUNT, stored)
        assert not report.ok
        assert report.first_break is not None
        assert report.first_break.kind is BreakKind.CHANGED
        assert report.first_break.entry_id == tampered[k][1]  # named as it is stored now
        assert report.first_break.seq == tampered[k][0]
        assert report.verified_through_seq == k


@settings(max_examples=100)
@given(n=st.integers(2, 30), data=st.data())
def test_deleting_an_entry_is_detected_and_named(n: int, data: st.DataObject) -> None:
    rows = rows_of(build_chain(n))
    k = data.draw(st.integers(0, n - 2), label="deleted")  # the last one needs a checkpoint
    report = verify_chain(ACCOUNT, rows[:k] + rows[k + 1 :])
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.DELETED
    assert report.first_break.seq == k + 1
    assert f"seq {k + 1}" in report.first_break.message
    assert report.verified_through_seq == k


def test_deleting_a_run_of_entries_names_the_gap() -> None:
    rows = rows_of(build_chain(10))
    report = verify_chain(ACCOUNT, rows[:3] + rows[7:])
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.DELETED
    assert "seq 4–7 deleted" in report.first_break.message


def test_deleting_and_renumbering_is_detected() -> None:
    rows = rows_of(build_chain(6))
    renumbered = rows[:2] + [replace_field(r, 0, r[0] - 1) for r in rows[3:]]
    report = verify_chain(ACCOUNT, renumbered)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.DELETED
    assert report.first_break.seq == 3


@settings(max_examples=100)
@given(n=st.integers(1, 30), data=st.data(), linked=st.booleans(), renumber=st.booleans())
def test_inserting_an_entry_is_detected_and_named(n: int, data: st.DataObject, linked: bool, renumber: bool) -> None:
    rows = rows_of(build_chain(n))
    k = data.draw(st.integers(0, n - 1), label="insert before")
    prev = (rows[k - 1][9] if k else GENESIS_HASH) if linked else "f" * 64
    fake = forge(rows, k + 1, prev)
    later = [replace_field(r, 0, r[0] + 1) for r in rows[k:]] if renumber else rows[k:]
    report = verify_chain(ACCOUNT, by_seq([*rows[:k], fake, *later]))
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.INSERTED
    assert report.first_break.entry_id == "audit_forged"
    assert report.verified_through_seq == k


@settings(max_examples=100)
@given(n=st.integers(2, 30), data=st.data(), how=st.sampled_from(["rows", "seq", "content"]))
def test_reordering_two_entries_is_detected_and_named(n: int, data: st.DataObject, how: str) -> None:
    rows = rows_of(build_chain(n))
    i = data.draw(st.integers(0, n - 2), label="first")
    j = data.draw(st.integers(i + 1, n - 1), label="second")
    stored = list(rows)
    if how == "rows":  # the rows themselves change places in the stored order
        stored[i], stored[j] = rows[j], rows[i]
    elif how == "seq":  # their seq values are swapped; ORDER BY seq does the rest
        stored[i], stored[j] = replace_field(rows[i], 0, rows[j][0]), replace_field(rows[j], 0, rows[i][0])
        stored = by_seq(stored)
    else:  # everything but seq is swapped
        stored[i] = (rows[i][0], *rows[j][1:])
        stored[j] = (rows[j][0], *rows[i][1:])
    report = verify_chain(ACCOUNT, stored)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.REORDERED
    assert report.first_break.entry_id == rows[j][1]  # the entry now standing in seq i + 1's place
    assert report.verified_through_seq == i


def test_moving_an_entry_to_the_end_names_the_moved_entry() -> None:
    rows = rows_of(build_chain(8))
    stored = by_seq([*rows[:3], replace_field(rows[3], 0, 99), *rows[4:]])
    report = verify_chain(ACCOUNT, stored)
    assert report.first_break is not None
    assert report.first_break.entry_id == rows[3][1]
    assert "seq was changed from 4 to 99" in report.first_break.message


def test_rewriting_an_entry_and_its_hash_names_that_entry() -> None:
    rows = rows_of(build_chain(10))
    rewritten = forge(rows, 5, rows[3][9], entry_id=rows[4][1])
    report = verify_chain(ACCOUNT, [*rows[:4], rewritten, *rows[5:]])
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.REWRITTEN
    assert report.first_break.entry_id == rows[4][1]
    assert report.verified_through_seq == 4


def test_a_break_stops_verification_of_everything_after_it() -> None:
    rows = rows_of(build_chain(10))
    rows[2] = replace_field(rows[2], 2, "EDIT" if rows[2][2] != "EDIT" else "VIEW")
    report = verify_chain(ACCOUNT, rows)
    assert report.verified_through_seq == 2
    assert report.entries_checked == 3


def test_unencodable_stored_values_are_reported_not_raised() -> None:
    rows = rows_of(build_chain(3))
    rows[1] = replace_field(rows[1], 2, None)  # action_type NULL
    report = verify_chain(ACCOUNT, rows)
    assert report.first_break is not None
    assert report.first_break.entry_id == "audit_000002"


# ---------------------------------------------------------------- checkpoints

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_ID = "ed25519:test"


def sign(cp: Checkpoint, key: Ed25519PrivateKey = KEY) -> Checkpoint:
    from dataclasses import replace

    return replace(cp, signature=key.sign(cp.signed_bytes()).hex())


def ed25519_check(public: Ed25519PublicKey) -> Callable[[bytes, str, str], bool]:
    def check(message: bytes, signature: str, key_id: str) -> bool:
        try:
            public.verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return key_id == KEY_ID

    return check


CHECK = ed25519_check(KEY.public_key())


def checkpoints_at(entries: list[AuditEntry], seqs: list[int]) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    for s in seqs:
        cp = next_checkpoint(
            account_id=ACCOUNT,
            seq=s,
            head_hash=entries[s - 1].entry_hash if s else GENESIS_HASH,
            timestamp=f"2024-06-27T15:{s:02d}:00.000Z",
            key_id=KEY_ID,
            previous=out[-1] if out else None,
        )
        out.append(sign(cp))
    return out


def test_checkpoint_signed_bytes_are_the_canonical_payload() -> None:
    cp = next_checkpoint(
        account_id="acct_1",
        seq=2,
        head_hash="ab" * 32,
        timestamp="2024-06-27T15:00:00.000Z",
        key_id=KEY_ID,
        previous=None,
    )
    assert (
        cp.signed_bytes()
        == (
            '{"account_id":"acct_1","head_hash":"' + "ab" * 32 + '","key_id":"ed25519:test",'
            '"prev_checkpoint_hash":null,"seq":2,"timestamp":"2024-06-27T15:00:00.000Z",'
            '"type":"powermeter.audit.checkpoint","v":1}'
        ).encode()
    )
    # A third party holding the JSON and the public key can check it with stock tools.
    signed = sign(cp)
    KEY.public_key().verify(bytes.fromhex(signed.signature), canonical_json(signed.payload()).encode())


def test_a_chain_with_valid_checkpoints_verifies_and_is_anchored() -> None:
    entries = build_chain(20)
    report = verify_chain(ACCOUNT, rows_of(entries), checkpoints_at(entries, [0, 5, 12]), CHECK)
    assert report.ok
    assert report.anchored_through_seq == 12
    assert report.checkpoints_checked == 3
    assert report.last_checkpoint is not None
    assert report.last_checkpoint.seq == 12


@pytest.mark.parametrize("keep", [0, 7, 11])
def test_truncating_the_tail_after_a_checkpoint_is_detected(keep: int) -> None:
    entries = build_chain(20)
    cps = checkpoints_at(entries, [5, 12])
    report = verify_chain(ACCOUNT, rows_of(entries[:keep]), cps, CHECK)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.TRUNCATED
    assert report.first_break.seq == keep + 1
    assert report.first_break.checkpoint_seq == 12


def test_truncating_after_the_last_checkpoint_only_is_not_provable() -> None:
    """Documented limit: entries newer than the newest checkpoint can be cut without trace."""
    entries = build_chain(20)
    report = verify_chain(ACCOUNT, rows_of(entries[:15]), checkpoints_at(entries, [12]), CHECK)
    assert report.ok


def test_a_rewritten_chain_is_caught_by_the_checkpoint() -> None:
    entries = build_chain(20)
    cps = checkpoints_at(entries, [5, 12])
    # Rewrite entry 8 and recompute every later hash: internally consistent again.
    rows = rows_of(entries[:7])
    prev = rows[-1][9]
    for s in range(8, 21):
        r = forge(rows, s, prev, entry_id=f"audit_{s:06d}")
        rows.append(r)
        prev = r[9]
    assert verify_chain(ACCOUNT, rows).ok  # without checkpoints nothing shows
    report = verify_chain(ACCOUNT, rows, cps, CHECK)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.REWRITTEN
    assert report.first_break.checkpoint_seq == 12
    assert report.first_break.seq == 12
    assert "after seq 5" in report.first_break.message
    assert report.verified_through_seq == 5


def test_a_forged_checkpoint_signature_is_detected() -> None:
    entries = build_chain(10)
    cps = checkpoints_at(entries, [3, 6])
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    cps[1] = sign(cps[1], other)
    report = verify_chain(ACCOUNT, rows_of(entries), cps, CHECK)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.CHECKPOINT_INVALID
    assert report.first_break.checkpoint_seq == 6
    assert report.anchored_through_seq == 3


def test_deleting_a_checkpoint_in_the_middle_is_detected() -> None:
    entries = build_chain(10)
    cps = checkpoints_at(entries, [2, 4, 8])
    report = verify_chain(ACCOUNT, rows_of(entries), [cps[0], cps[2]], CHECK)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.CHECKPOINT_INVALID
    assert report.first_break.checkpoint_seq == 8


def test_an_entry_break_before_a_bad_checkpoint_is_reported_first() -> None:
    entries = build_chain(10)
    cps = checkpoints_at(entries, [8])
    rows = rows_of(entries)
    rows[1] = replace_field(rows[1], 7, "2099-01-01T00:00:00.000Z")
    report = verify_chain(ACCOUNT, rows, cps, CHECK)
    assert report.first_break is not None
    assert report.first_break.entry_id == "audit_000002"


def test_checkpoints_covering_fewer_entries_than_an_earlier_one_are_refused() -> None:
    entries = build_chain(10)
    first, second = checkpoints_at(entries, [8, 4])
    report = verify_chain(ACCOUNT, rows_of(entries), [first, second], CHECK)
    assert report.first_break is not None
    assert report.first_break.kind is BreakKind.CHECKPOINT_INVALID
    assert "fewer entries" in report.first_break.message


@pytest.mark.parametrize(
    ("head", "kind", "seq"),
    [
        ((12, "ab" * 32), BreakKind.TRUNCATED, 11),
        ((10, "ab" * 32), BreakKind.REWRITTEN, 10),
        ((8, "ab" * 32), BreakKind.INSERTED, 9),
    ],
)
def test_the_head_record_witnesses_cuts_rewrites_and_writes_around_the_append_path(
    head: tuple[int, str], kind: BreakKind, seq: int
) -> None:
    entries = build_chain(10)
    assert verify_chain(ACCOUNT, rows_of(entries), expected_head=(10, entries[-1].entry_hash)).ok
    report = verify_chain(ACCOUNT, rows_of(entries), expected_head=head)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (kind, seq)


def test_export_lines_reparse_to_the_same_hash() -> None:
    """What `audit export` writes (canonical JSON with parsed details) hashes back to the entry hash."""
    e = chain_entry(
        account_id=ACCOUNT,
        seq=1,
        entry_id="audit_1",
        action_type="EDIT",
        receipt_id="rcpt_1",
        actor_key_id=None,
        actor_masked_key=None,
        details={"note": "voided: wrong region", "kwh": 2.45, "n": 67145854434663456},
        timestamp="2026-11-22T12:00:00.000Z",
        prev_hash=GENESIS_HASH,
    )
    line = canonical_json({**e.as_json(), "type": "entry"})
    obj = parse_json(line)
    del obj["type"], obj["entry_hash"]
    assert hashlib.sha256(canonical_json(obj).encode()).hexdigest() == e.entry_hash
