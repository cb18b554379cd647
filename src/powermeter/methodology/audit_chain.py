"""Tamper-evident audit log: hash-chained entries and signed checkpoints (pure functions).

Each account has its own chain. Entry ``seq`` (1, 2, 3, …) is hashed together with the hash of
entry ``seq - 1`` (``GENESIS_HASH`` for the first), so changing, deleting, inserting or reordering
any stored entry breaks the chain at that entry (reliability_anchors.md §3.1). Because anyone can
recompute SHA-256, the server also signs the chain head from time to time (a *checkpoint*, as
CloudTrail's hourly digest files do, reliability_anchors.md §3.3); entries up to a checkpoint can
then not be rewritten or cut off without the signature giving it away.

Hashed bytes of an entry: the RFC 8785 (JCS) canonical JSON of the object

    {"account_id", "action_type", "actor_key_id", "actor_masked_key", "details", "id",
     "prev_hash", "receipt_id", "seq", "timestamp", "v": 1}

encoded as UTF-8; ``entry_hash = hex(SHA-256(bytes))``. ``details`` is a JSON object; the other
values are strings, ``null`` (receipt and actor fields) or an integer (``seq``). A third party
re-derives the hash from an exported entry line by dropping ``type`` and ``entry_hash`` and
canonicalising the rest with any JCS library.

A checkpoint signs the JCS bytes of
``{"account_id", "head_hash", "key_id", "prev_checkpoint_hash", "seq", "timestamp",
"type": "powermeter.audit.checkpoint", "v": 1}`` where ``head_hash`` is the hash of entry ``seq``
(``GENESIS_HASH`` for an empty chain) and ``prev_checkpoint_hash`` is SHA-256 of the previous
checkpoint's signed bytes (``null`` for the account's first), so checkpoints form a chain too.

This module does no I/O: the signature scheme is passed in as a callable. Verification is a
tight loop over rows in the stored column order :data:`ROW_FIELDS`, whose ``details`` is the
canonical JSON *text* the entry was hashed with.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from powermeter.methodology.canonical import MAX_SAFE_INTEGER, canonical_bytes, canonical_text, string_literal

ENTRY_FORMAT_VERSION: Final = 1
CHECKPOINT_TYPE: Final = "powermeter.audit.checkpoint"
GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of an account's first entry and ``head_hash`` of an empty chain."""

# RFC 8785 string literals for the entry templates below (exact for well-formed strings; a lone
# surrogate makes the final UTF-8 encoding fail, so such an entry is refused, as canonical_json does).
_enc: Callable[[str], str] = string_literal

ROW_FIELDS: Final = (
    "seq",
    "id",
    "action_type",
    "receipt_id",
    "actor_key_id",
    "actor_masked_key",
    "details",
    "timestamp",
    "prev_hash",
    "entry_hash",
)
"""Column order of a stored entry row, as :func:`verify_chain` reads it (``details`` as JCS text)."""

Row = tuple[int, str, str, str | None, str | None, str | None, str, str, str, str]


class ActionType(StrEnum):
    """What an entry records. Receipt access (the seed's three) plus key/account lifecycle."""

    VIEW = "VIEW"
    DOWNLOAD = "DOWNLOAD"
    EDIT = "EDIT"
    KEY_CREATED = "KEY_CREATED"
    KEY_REVOKED = "KEY_REVOKED"
    ACCOUNT_CREATED = "ACCOUNT_CREATED"
    #: a signed tree head of records (compute-job receipts, an AI inference record) at ingest
    TREE_SIGNED = "TREE_SIGNED"


# --------------------------------------------------------------------------------------------
# RFC 8785 canonical JSON (the project's one encoder, refusing strings that are not well-formed
# Unicode, so that any JCS library re-derives an entry's hash)
# --------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON text of ``value`` (dict/list/tuple/str/int/float/bool/None).

    Raises ``ValueError`` for NaN/Infinity, integers a double cannot hold exactly and strings that are not
    well-formed Unicode (lone surrogates); ``TypeError`` for anything else (e.g. ``Decimal``,
    which should be given as a string to keep its exact digits).
    """
    return canonical_text(value, lone_surrogates="reject")


def canonical_json_bytes(value: Any) -> bytes:
    return canonical_bytes(value, lone_surrogates="reject")


def _json_int(text: str) -> int | float:
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(value)


def parse_json(text: str | bytes) -> Any:
    """Parse JSON the way RFC 8785 reads it: integers beyond 2^53 become doubles.

    ``canonical_json(parse_json(t))`` is then the canonical form of any JSON text ``t``.
    """
    return json.loads(text, parse_int=_json_int)


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``: the exact string an entry is hashed with."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    # ``YYYY-MM-DDTHH:MM:SS.mmmZ``: isoformat truncates to milliseconds (never rounds up)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _opt(value: str | None) -> str:
    return "null" if value is None else _enc(value)


def entry_bytes(
    *,
    account_id: str,
    seq: int,
    entry_id: str,
    action_type: str,
    receipt_id: str | None,
    actor_key_id: str | None,
    actor_masked_key: str | None,
    details_json: str,
    timestamp: str,
    prev_hash: str,
) -> bytes:
    """The hashed bytes of one entry (JCS of the entry object). ``details_json`` is JCS text."""
    if type(seq) is not int or not 0 < seq <= MAX_SAFE_INTEGER:
        raise ValueError(f"seq must be a positive integer, got {seq!r}")
    return (
        f'{{"account_id":{_enc(account_id)},"action_type":{_enc(action_type)},'
        f'"actor_key_id":{_opt(actor_key_id)},"actor_masked_key":{_opt(actor_masked_key)},'
        f'"details":{details_json},"id":{_enc(entry_id)},"prev_hash":{_enc(prev_hash)},'
        f'"receipt_id":{_opt(receipt_id)},"seq":{seq},"timestamp":{_enc(timestamp)},"v":1}}'
    ).encode()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One chained entry as stored (``details_json`` is the canonical JSON text of ``details``)."""

    account_id: str
    seq: int
    id: str
    action_type: str
    receipt_id: str | None
    actor_key_id: str | None
    actor_masked_key: str | None
    details_json: str
    timestamp: str
    prev_hash: str
    entry_hash: str

    def row(self) -> Row:
        """The entry in :data:`ROW_FIELDS` order."""
        return (
            self.seq,
            self.id,
            self.action_type,
            self.receipt_id,
            self.actor_key_id,
            self.actor_masked_key,
            self.details_json,
            self.timestamp,
            self.prev_hash,
            self.entry_hash,
        )

    @property
    def details(self) -> dict[str, Any]:
        parsed: dict[str, Any] = parse_json(self.details_json)
        return parsed

    def as_json(self) -> dict[str, Any]:
        """The entry object whose canonical JSON is hashed, plus ``entry_hash``."""
        return {
            "account_id": self.account_id,
            "action_type": self.action_type,
            "actor_key_id": self.actor_key_id,
            "actor_masked_key": self.actor_masked_key,
            "details": self.details,
            "id": self.id,
            "prev_hash": self.prev_hash,
            "receipt_id": self.receipt_id,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "v": ENTRY_FORMAT_VERSION,
            "entry_hash": self.entry_hash,
        }


def chain_entry(
    *,
    account_id: str,
    seq: int,
    entry_id: str,
    action_type: str,
    receipt_id: str | None,
    actor_key_id: str | None,
    actor_masked_key: str | None,
    details: Mapping[str, Any],
    timestamp: str,
    prev_hash: str,
) -> AuditEntry:
    """Build the next entry of a chain whose head is ``(seq - 1, prev_hash)``."""
    details_json = "{}" if not details else canonical_json(details)
    if not details_json.startswith("{"):
        raise TypeError("details must be a JSON object")
    body = entry_bytes(
        account_id=account_id,
        seq=seq,
        entry_id=entry_id,
        action_type=action_type,
        receipt_id=receipt_id,
        actor_key_id=actor_key_id,
        actor_masked_key=actor_masked_key,
        details_json=details_json,
        timestamp=timestamp,
        prev_hash=prev_hash,
    )
    return AuditEntry(
        account_id,
        seq,
        entry_id,
        action_type,
        receipt_id,
        actor_key_id,
        actor_masked_key,
        details_json,
        timestamp,
        prev_hash,
        hashlib.sha256(body).hexdigest(),
    )


def _row_hash(account_id: str, row: Sequence[Any]) -> str | None:
    """Recomputed hash of a row, or ``None`` if the row cannot be encoded at all."""
    try:
        return hashlib.sha256(
            entry_bytes(
                account_id=account_id,
                seq=row[0],
                entry_id=row[1],
                action_type=row[2],
                receipt_id=row[3],
                actor_key_id=row[4],
                actor_masked_key=row[5],
                details_json=row[6],
                timestamp=row[7],
                prev_hash=row[8],
            )
        ).hexdigest()
    except (TypeError, ValueError, UnicodeError):
        return None


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "account A's chain had ``seq`` entries ending in ``head_hash`` at ``timestamp``"."""

    account_id: str
    seq: int
    head_hash: str
    timestamp: str
    key_id: str
    prev_checkpoint_hash: str | None
    signature: str = ""

    def payload(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "head_hash": self.head_hash,
            "key_id": self.key_id,
            "prev_checkpoint_hash": self.prev_checkpoint_hash,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "type": CHECKPOINT_TYPE,
            "v": ENTRY_FORMAT_VERSION,
        }

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers (JCS of :meth:`payload`)."""
        return canonical_json_bytes(self.payload())

    def checkpoint_hash(self) -> str:
        """SHA-256 of the signed bytes; the next checkpoint's ``prev_checkpoint_hash``."""
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {**self.payload(), "signature": self.signature}


def next_checkpoint(
    *,
    account_id: str,
    seq: int,
    head_hash: str,
    timestamp: str,
    key_id: str,
    previous: Checkpoint | None,
) -> Checkpoint:
    """An unsigned checkpoint of the head ``(seq, head_hash)``, chained to ``previous``."""
    return Checkpoint(
        account_id=account_id,
        seq=seq,
        head_hash=head_hash,
        timestamp=timestamp,
        key_id=key_id,
        prev_checkpoint_hash=None if previous is None else previous.checkpoint_hash(),
    )


SignatureCheck = Callable[[bytes, str, str], bool]
"""``(signed_bytes, signature, key_id) -> bool``; supplied by the caller (Ed25519 in the service)."""


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


class BreakKind(StrEnum):
    CHANGED = "changed"  # a stored field (or the stored hash) of this entry no longer matches
    DELETED = "deleted"  # one or more entries before this point are missing
    INSERTED = "inserted"  # this entry is not part of the chain: the next one skips it
    REORDERED = "reordered"  # this entry is out of place: it links to an entry stored after it
    REWRITTEN = "rewritten"  # this entry was replaced and its hash recomputed; the chain no longer
    # links to it, or it no longer matches a signed checkpoint
    TRUNCATED = "truncated"  # entries after the last one were removed; a checkpoint covers them
    CHECKPOINT_INVALID = "checkpoint_invalid"  # a checkpoint's signature or chain does not verify


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place where the stored log and its hashes (or checkpoints) disagree."""

    kind: BreakKind
    seq: int
    """Sequence number of the bad entry (for DELETED/TRUNCATED: of the first missing one)."""
    entry_id: str | None
    """Id of the bad entry; for DELETED/TRUNCATED, of the entry where it was noticed (or None)."""
    message: str
    checkpoint_seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "seq": self.seq,
            "entry_id": self.entry_id,
            "message": self.message,
            "checkpoint_seq": self.checkpoint_seq,
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    account_id: str
    entries_checked: int
    head_seq: int
    head_hash: str
    verified_through_seq: int
    """Every entry with ``seq`` ≤ this checks out (0 when none does)."""
    anchored_through_seq: int
    """Entries up to this seq are also covered by a valid signed checkpoint."""
    checkpoints_checked: int
    first_break: ChainBreak | None = None
    last_checkpoint: Checkpoint | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def as_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "verified_through_seq": self.verified_through_seq,
            "anchored_through_seq": self.anchored_through_seq,
            "checkpoints_checked": self.checkpoints_checked,
            "first_break": None if self.first_break is None else self.first_break.as_json(),
            "last_checkpoint": None if self.last_checkpoint is None else self.last_checkpoint.as_json(),
        }


LOOKBEHIND: Final = 256
"""Entries remembered behind the break to recognise an inserted run (of at most this length)."""


def _describe(row: Sequence[Any]) -> str:
    return f"entry {row[1]} (seq {row[0]})"


def _with_seq(row: Sequence[Any], seq: int) -> tuple[Any, ...]:
    return (seq, *row[1:])


def _classify(
    account_id: str,
    row: Sequence[Any],
    position: int,
    expected_seq: int,
    expected_prev: str,
    recent: deque[Sequence[Any]],
    rest: Iterator[Sequence[Any]],
) -> ChainBreak:
    """Explain why ``row``, the first entry that does not check out, breaks the chain.

    ``recent`` holds up to :data:`LOOKBEHIND` entries before it (oldest first), ``rest`` the
    entries after it (consumed here, in constant memory).
    """
    seq, entry_id, prev, stored = row[0], row[1], row[8], row[9]
    hash_ok = _row_hash(account_id, row) == stored
    if prev == expected_prev:
        if not hash_ok:
            return ChainBreak(
                BreakKind.CHANGED,
                seq,
                entry_id,
                f"{_describe(row)} does not match its hash: a field of this entry (or its stored hash) was changed",
            )
        return ChainBreak(
            BreakKind.CHANGED,
            seq,
            entry_id,
            f"{_describe(row)} has seq {seq} where {expected_seq} was expected",
        )

    nxt = next(rest, None)
    # 1. It links to an entry stored after it: moved, or two entries swapped.
    if prev != GENESIS_HASH:
        later_rows = rest if nxt is None else _prepend(nxt, rest)
        for later in later_rows:
            if later[9] != prev:
                continue
            if not hash_ok and _row_hash(account_id, _with_seq(row, later[0])) == stored:
                return ChainBreak(
                    BreakKind.REORDERED,
                    seq,
                    entry_id,
                    f"{_describe(row)} and {_describe(later)} swapped places (each was hashed with the other's seq)",
                )
            # ``later`` belongs where ``row`` is; if it hashes there, only its seq was changed.
            if later[0] != expected_seq and _row_hash(account_id, _with_seq(later, expected_seq)) == later[9]:
                return ChainBreak(
                    BreakKind.CHANGED,
                    later[0],
                    later[1],
                    f"{_describe(later)} was moved: its seq was changed from {expected_seq} to {later[0]}",
                )
            return ChainBreak(
                BreakKind.REORDERED,
                seq,
                entry_id,
                f"{_describe(row)} is out of order: it follows {_describe(later)}, which is stored after it",
            )
    # 2. It links to an earlier entry than the one before it: what lies between was inserted.
    back = list(recent)
    if prev == GENESIS_HASH and back and len(back) == position:
        return ChainBreak(
            BreakKind.INSERTED,
            back[0][0],
            back[0][1],
            f"{_describe(back[0])} was inserted: {_describe(row)} is the start of the chain",
        )
    for j in range(len(back) - 2, -1, -1):
        if back[j][9] == prev:
            first = back[j + 1]
            n = len(back) - 1 - j
            return ChainBreak(
                BreakKind.INSERTED,
                first[0],
                first[1],
                f"{_describe(first)} was inserted: {_describe(row)} links to {_describe(back[j])}, "
                f"skipping {n} entr{'y' if n == 1 else 'ies'}",
            )
    # 3. The next entry links to this one's predecessor: this one was inserted.
    if nxt is not None and nxt[8] == expected_prev:
        return ChainBreak(
            BreakKind.INSERTED,
            seq,
            entry_id,
            f"{_describe(row)} was inserted: the next entry links past it to the one before it",
        )
    # 4. It links to an entry that is not in the log.
    seq_is_int = type(seq) is int
    if hash_ok and seq_is_int and seq > expected_seq:
        gap = f"seq {expected_seq}" if seq == expected_seq + 1 else f"seq {expected_seq}–{seq - 1}"
        return ChainBreak(
            BreakKind.DELETED,
            expected_seq,
            entry_id,
            f"{gap} deleted: {_describe(row)} links to an entry that is no longer in the log",
        )
    if hash_ok and position > 0:
        before = recent[-1]
        return ChainBreak(
            BreakKind.REWRITTEN,
            before[0],
            before[1],
            f"{_describe(before)} was rewritten: its hash was recomputed, and {_describe(row)} still "
            "links to the original",
        )
    if hash_ok:
        return ChainBreak(
            BreakKind.DELETED,
            expected_seq,
            entry_id,
            f"entries before {_describe(row)} were deleted: it does not start the chain",
        )
    if seq_is_int and seq == expected_seq and _row_hash(account_id, _with_seq(row, seq + 1)) == stored:
        return ChainBreak(
            BreakKind.DELETED,
            expected_seq,
            entry_id,
            f"seq {expected_seq} deleted: {_describe(row)} was renumbered from seq {seq + 1} to close the gap",
        )
    return ChainBreak(
        BreakKind.CHANGED,
        seq,
        entry_id,
        f"{_describe(row)} does not match its hash and does not link to the entry before it",
    )


def _prepend(first: Sequence[Any], rest: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    yield first
    yield from rest


def _check_checkpoints(
    account_id: str,
    checkpoints: Sequence[Checkpoint],
    verify_signature: SignatureCheck | None,
) -> tuple[list[Checkpoint], ChainBreak | None]:
    """Check checkpoints in the order they were made: signature, link to the one before, and that
    no later one covers fewer entries or names another head. Returns the valid prefix and the first
    problem."""
    valid: list[Checkpoint] = []
    heads: dict[int, str] = {}
    prev: Checkpoint | None = None
    for cp in checkpoints:
        problem = None
        if cp.account_id != account_id:
            problem = f"belongs to account {cp.account_id!r}"
        elif verify_signature is not None and not verify_signature(cp.signed_bytes(), cp.signature, cp.key_id):
            problem = "has a signature that does not verify"
        elif cp.prev_checkpoint_hash != (None if prev is None else prev.checkpoint_hash()):
            problem = "does not link to the checkpoint before it (a checkpoint was deleted, changed or reordered)"
        elif cp.seq == 0 and cp.head_hash != GENESIS_HASH:
            problem = "covers an empty chain but names a head hash"
        elif prev is not None and cp.seq < prev.seq:
            problem = f"covers fewer entries than the checkpoint before it (seq {prev.seq}): the log was cut"
        elif heads.get(cp.seq, cp.head_hash) != cp.head_hash:
            problem = "names a different head than an earlier checkpoint at the same seq"
        if problem is not None:
            return valid, ChainBreak(
                BreakKind.CHECKPOINT_INVALID,
                cp.seq,
                None,
                f"checkpoint at seq {cp.seq} ({cp.timestamp}) {problem}",
                checkpoint_seq=cp.seq,
            )
        valid.append(cp)
        heads[cp.seq] = cp.head_hash
        prev = cp
    return valid, None


def _head_mismatch(expected_head: tuple[int, str], head_seq: int, recent: deque[Sequence[Any]]) -> ChainBreak:
    want_seq = expected_head[0]
    if want_seq > head_seq:
        return ChainBreak(
            BreakKind.TRUNCATED,
            head_seq + 1,
            None,
            f"log truncated: it ends at seq {head_seq} but the chain head record says seq {want_seq} "
            f"(entries {head_seq + 1}–{want_seq} were deleted)",
        )
    if want_seq == head_seq:
        last = recent[-1] if recent else None
        return ChainBreak(
            BreakKind.REWRITTEN,
            head_seq,
            None if last is None else last[1],
            f"the last entry (seq {head_seq}) does not carry the hash in the chain head record: it was rewritten",
        )
    extra = next((r for r in recent if r[0] == want_seq + 1), None)
    return ChainBreak(
        BreakKind.INSERTED,
        want_seq + 1,
        None if extra is None else extra[1],
        f"entries after seq {want_seq} were added around the append path (the chain head record ends "
        f"at seq {want_seq}, the log at seq {head_seq})",
    )


def verify_chain(
    account_id: str,
    rows: Iterable[Sequence[Any]],
    checkpoints: Sequence[Checkpoint] = (),
    verify_signature: SignatureCheck | None = None,
    expected_head: tuple[int, str] | None = None,
) -> ChainReport:
    """Recompute an account's chain from its stored rows (in seq order, :data:`ROW_FIELDS` layout).

    Stops at the first entry that does not check out and says why. Checkpoints (in the order they
    were made) are checked for their signature (when ``verify_signature`` is given) and their own
    chain, then against the entries: the entry at a checkpoint's ``seq`` must carry its
    ``head_hash``, and the log must reach at least the last checkpoint's ``seq`` (otherwise its tail
    was truncated). ``expected_head`` is the ``(seq, hash)`` the store believes is the head (an
    unsigned witness: it catches a cut tail or an entry written around the append path).
    """
    valid_cps, cp_break = _check_checkpoints(account_id, checkpoints, verify_signature)
    cp_heads = {cp.seq: cp.head_hash for cp in valid_cps if cp.seq > 0}
    cp_seqs = iter(sorted(cp_heads))
    next_cp = next(cp_seqs, -1)
    anchored = 0

    prefix = f'{{"account_id":{_enc(account_id)},"action_type":'
    sha256 = hashlib.sha256
    enc = _enc
    expected_prev = GENESIS_HASH
    expected_seq = 1
    position = 0
    recent: deque[Sequence[Any]] = deque(maxlen=LOOKBEHIND)
    remember = recent.append
    it = iter(rows)
    first_break: ChainBreak | None = None
    for row in it:
        seq, eid, action, receipt, key_id, masked, details, ts, prev, stored = row
        try:
            body = (
                f"{prefix}{enc(action)},"
                f'"actor_key_id":{"null" if key_id is None else enc(key_id)},'
                f'"actor_masked_key":{"null" if masked is None else enc(masked)},'
                f'"details":{details},"id":{enc(eid)},"prev_hash":{enc(prev)},'
                f'"receipt_id":{"null" if receipt is None else enc(receipt)},'
                f'"seq":{seq},"timestamp":{enc(ts)},"v":1}}'
            ).encode()
        except (TypeError, ValueError, UnicodeError):
            body = b""
        if sha256(body).hexdigest() != stored or prev != expected_prev or seq != expected_seq:
            first_break = _classify(account_id, row, position, expected_seq, expected_prev, recent, it)
            break
        if seq == next_cp:
            if stored != cp_heads[seq]:
                first_break = ChainBreak(
                    BreakKind.REWRITTEN,
                    seq,
                    eid,
                    f"entries after seq {anchored} up to {_describe(row)} were rewritten: the chain's "
                    f"hash at seq {seq} differs from the signed checkpoint",
                    checkpoint_seq=seq,
                )
                break
            anchored = seq
            next_cp = next(cp_seqs, -1)
        expected_prev = stored
        expected_seq = seq + 1
        position += 1
        remember(row)

    head_seq = expected_seq - 1  # last entry that checked out
    examined = position
    verified_through = head_seq
    if first_break is not None:
        examined += 1
        if first_break.checkpoint_seq is not None:  # rewritten under a checkpoint
            verified_through = anchored
        else:
            verified_through = min(head_seq, max(0, first_break.seq - 1))
    elif next_cp != -1:
        last_cp = max(cp_heads)
        first_break = ChainBreak(
            BreakKind.TRUNCATED,
            expected_seq,
            None,
            f"log truncated: it ends at seq {head_seq} but a signed checkpoint covers seq {last_cp} "
            f"(entries {expected_seq}–{last_cp} were deleted)",
            checkpoint_seq=last_cp,
        )
    elif expected_head is not None and expected_head != (head_seq, expected_prev):
        first_break = _head_mismatch(expected_head, head_seq, recent)
        verified_through = min(verified_through, max(0, first_break.seq - 1))
    if cp_break is not None and (first_break is None or cp_break.seq < first_break.seq):
        first_break = cp_break
    return ChainReport(
        account_id=account_id,
        entries_checked=examined,
        head_seq=head_seq,
        head_hash=expected_prev,
        verified_through_seq=verified_through,
        anchored_through_seq=anchored,
        checkpoints_checked=len(valid_cps),
        first_break=first_break,
        last_checkpoint=valid_cps[-1] if valid_cps else None,
    )
