"""The audit log: append (inside the caller's transaction), verify, checkpoint, export.

Entries are appended inside the caller's transaction, so an entry commits or rolls back with the work
it describes. :func:`append` locks the account's chain head until the commit: call it late.

Events reach the log through subscriptions made in the composition root (``powermeter.composition``):
:func:`record_key_event` listens to account and key events, :func:`record_receipt_access` to receipt
reads and downloads. Nothing here subscribes itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from powermeter.accounts import service as accounts
from powermeter.audit import repository as repo
from powermeter.infra.clock import Clock
from powermeter.infra.db import Database
from powermeter.infra.db.unit_of_work import Grouped, defer, hot_rows
from powermeter.infra.security import Signer
from powermeter.methodology.audit_chain import (
    CHECKPOINT_TYPE,
    GENESIS_HASH,
    ActionType,
    AuditEntry,
    ChainReport,
    Checkpoint,
    SignatureCheck,
    canonical_json,
    chain_entry,
    format_timestamp,
    next_checkpoint,
    parse_json,
    verify_chain,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("powermeter.audit")

EXPORT_FORMAT = "powermeter.audit.export"
RECEIPT_ACTIONS = (ActionType.VIEW.value, ActionType.DOWNLOAD.value, ActionType.EDIT.value)
ACTION_TYPES = tuple(a.value for a in ActionType)


def new_entry_id() -> str:
    return "audit_" + secrets.token_hex(12)


def append(
    conn: Connection,
    *,
    account_id: str,
    action_type: str,
    receipt_id: str | None = None,
    actor_key_id: str | None = None,
    actor_masked_key: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntry | None:
    """Append one entry to the account's chain, inside ``conn``'s transaction.

    Inside a PostgreSQL group-commit lane (infra/db/unit_of_work.py) the append is deferred to just
    before the batch's COMMIT (the chain head is a hot row: its lock must not be held mid-batch) and
    ``None`` is returned; it commits or rolls back with the request's work all the same.

    Locks the account's chain head (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers are
    already serialised by ``BEGIN IMMEDIATE``), links the entry to it, inserts the entry and moves
    the head. On PostgreSQL, when this process knows the head from its last append to the account,
    one conditional statement does all of it (the guess is re-checked under the row lock; a stale
    one falls back to the locking path). ``details`` must be a JSON object (use strings for Decimal
    values).
    """
    if action_type not in ACTION_TYPES:
        raise ValueError(f"unknown audit action {action_type!r}")
    args = (account_id, action_type, receipt_id, actor_key_id, actor_masked_key, details, now)

    if defer(conn, ("2audit", account_id), _DeferredAppend(args)):
        return None
    return _append_now(conn, *args)


_Args = tuple[str, str, str | None, str | None, str | None, Mapping[str, Any] | None, datetime]


class _DeferredAppend(Grouped):
    """An append left for the end of a PostgreSQL lane's batch: the batch's appends to one account are
    linked in memory and written by one statement (:func:`_append_many`)."""

    __slots__ = ("args",)

    def __init__(self, args: _Args) -> None:
        super().__init__(args[0])
        self.args = args

    def __call__(self, conn: Connection) -> None:
        _append_now(conn, *self.args)

    @classmethod
    def run_many(cls, conn: Connection, items: list[Any]) -> None:
        _append_many(conn, [it.args for it in items])


def _append_many(conn: Connection, batch: list[_Args]) -> None:
    """PostgreSQL: append consecutive entries of one account with one statement when this process knows
    the head (a stale guess writes nothing), else under the head's row lock."""
    account_id = batch[0][0]
    ids = [new_entry_id() for _ in batch]

    def link(seq: int, prev_hash: str) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        for entry_id, (acct, action, receipt_id, key_id, masked, details, now) in zip(ids, batch, strict=True):
            e = chain_entry(
                account_id=acct,
                seq=seq + 1,
                entry_id=entry_id,
                action_type=action,
                receipt_id=receipt_id,
                actor_key_id=key_id,
                actor_masked_key=masked,
                details=details or {},
                timestamp=format_timestamp(now),
                prev_hash=prev_hash,
            )
            out.append(e)
            seq, prev_hash = e.seq, e.entry_hash
        return out

    now = batch[-1][6]
    guess = repo.known_head(conn, account_id)
    entries = link(*guess) if guess is not None else None
    if entries is None or not repo.append_many_if_head(conn, entries, now):
        head = _locked_head(conn, account_id, batch[0][6])
        entries = link(head.seq, head.head_hash)
        if not repo.append_many_if_head(conn, entries, now):  # pragma: no cover - the head is locked
            raise RuntimeError(f"audit chain head of {account_id} moved under its lock")
    repo.remember_head(conn, account_id, entries[-1].seq, entries[-1].entry_hash)


def _append_now(
    conn: Connection,
    account_id: str,
    action_type: str,
    receipt_id: str | None,
    actor_key_id: str | None,
    actor_masked_key: str | None,
    details: Mapping[str, Any] | None,
    now: datetime,
) -> AuditEntry:
    timestamp = format_timestamp(now)
    entry_id = new_entry_id()
    body = details or {}

    def link(seq: int, prev_hash: str) -> AuditEntry:
        return chain_entry(
            account_id=account_id,
            seq=seq,
            entry_id=entry_id,
            action_type=action_type,
            receipt_id=receipt_id,
            actor_key_id=actor_key_id,
            actor_masked_key=actor_masked_key,
            details=body,
            timestamp=timestamp,
            prev_hash=prev_hash,
        )

    hot = hot_rows(conn)
    if hot is not None:
        # a SQLite group commit keeps the head in memory and moves the row once, before its COMMIT
        key = ("2audit", account_id)
        known: repo.Head | None = hot.get(key)
        head = known if known is not None else _locked_head(conn, account_id, now)
        entry = link(head.seq + 1, head.head_hash)
        repo.insert_entry(conn, entry, hot)
        seq, entry_hash = entry.seq, entry.entry_hash
        hot.put(key, repo.Head(seq, entry_hash, head.checkpoints))
        hot.last(key, lambda c: repo.advance_head(c, account_id, seq, entry_hash, now))
        return entry
    guess = repo.known_head(conn, account_id)
    if guess is not None:  # PostgreSQL, and this process appended to the account before
        entry = link(guess[0] + 1, guess[1])
        if repo.append_if_head(conn, entry, now):
            repo.remember_head(conn, account_id, entry.seq, entry.entry_hash)
            return entry
    head = _locked_head(conn, account_id, now)
    entry = link(head.seq + 1, head.head_hash)
    repo.append_entry(conn, entry, now)
    repo.remember_head(conn, account_id, entry.seq, entry.entry_hash)
    return entry


def _locked_head(conn: Connection, account_id: str, now: datetime) -> repo.Head:
    """The account's chain head, locked for this transaction; created (empty) on first use."""
    head = repo.lock_head(conn, account_id)
    if head is None:
        repo.create_head(conn, account_id, now)
        head = repo.lock_head(conn, account_id)
        if head is None:  # pragma: no cover - the row was just created or already existed
            raise RuntimeError(f"audit chain head of {account_id} could not be created")
    return head


def record_key_event(conn: Connection, event: accounts.KeyEvent) -> None:
    """Listener for account and key events (subscribed by the composition root): one audit entry each."""
    details: dict[str, Any] = dict(event.details)
    if event.key_id is not None:
        details["key_id"] = event.key_id
    if event.masked_key is not None:
        details["masked_key"] = event.masked_key
    append(conn, account_id=event.account_id, action_type=event.action, details=details, now=event.at)


class ReceiptAccessEvent(Protocol):
    """What the audit log needs of a receipt read (the compute-job capability's ``ReceiptAccess``)."""

    @property
    def action(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def receipt_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor_key_id(self) -> str | None: ...
    @property
    def actor_masked_key(self) -> str | None: ...
    @property
    def via(self) -> str | None: ...


def record_receipt_access(conn: Connection, access: ReceiptAccessEvent) -> None:
    """Listener for receipt reads and downloads (subscribed by the composition root)."""
    append(
        conn,
        account_id=access.account_id,
        action_type=access.action,
        receipt_id=access.receipt_id,
        actor_key_id=access.actor_key_id,
        actor_masked_key=access.actor_masked_key,
        details={"via": access.via} if access.via else {},
        now=access.at,
    )


# --- signatures --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    key_id: str
    key: Ed25519PublicKey

    @property
    def pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def as_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "algorithm": "Ed25519", "public_key_pem": self.pem}

    @classmethod
    def of(cls, signer: Signer) -> PublicKey:
        return cls(signer.key_id, signer.public_key)

    @classmethod
    def from_pem(cls, pem: str | bytes, key_id: str) -> PublicKey:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return cls(key_id, key)


def signature_check(keys: Iterable[PublicKey]) -> SignatureCheck:
    """``(message, base64 signature, key_id) -> bool`` over the given public keys."""
    by_id = {k.key_id: k.key for k in keys}

    def check(message: bytes, signature: str, key_id: str) -> bool:
        key = by_id.get(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    return check


# --- checkpoints -------------------------------------------------------------------------------


def create_checkpoint(conn: Connection, signer: Signer, account_id: str, now: datetime) -> Checkpoint:
    """Sign the account's current chain head, chained to its previous checkpoint.

    Holds the head lock, so the head cannot move while it is signed.
    """
    cp = _checkpoint(conn, signer, account_id, now, only_if_moved=False)
    if cp is None:  # pragma: no cover - only_if_moved=False always signs
        raise RuntimeError("checkpoint not created")
    return cp


def checkpoint_if_moved(conn: Connection, signer: Signer, account_id: str, now: datetime) -> Checkpoint | None:
    """Like :func:`create_checkpoint`, but only when the head moved since the last checkpoint."""
    return _checkpoint(conn, signer, account_id, now, only_if_moved=True)


def _checkpoint(
    conn: Connection, signer: Signer, account_id: str, now: datetime, *, only_if_moved: bool
) -> Checkpoint | None:
    head = _locked_head(conn, account_id, now)
    number = head.checkpoints
    previous = repo.get_checkpoint(conn, account_id, number) if number else None
    last_seq = 0 if previous is None else previous.seq
    if only_if_moved and head.seq == last_seq:
        return None
    unsigned = next_checkpoint(
        account_id=account_id,
        seq=head.seq,
        head_hash=head.head_hash,
        timestamp=format_timestamp(now),
        key_id=signer.key_id,
        previous=previous,
    )
    cp = dataclasses.replace(unsigned, signature=signer.sign_b64(unsigned.signed_bytes()))
    repo.insert_checkpoint(conn, number + 1, cp, now)
    return cp


def list_checkpoints(conn: Connection, account_id: str, *, limit: int) -> tuple[list[Checkpoint], int]:
    """Newest first, with how many the account has."""
    head = repo.get_head(conn, account_id)
    cps = repo.list_checkpoints(conn, account_id, newest_first=True, limit=limit)
    return cps, 0 if head is None else int(head.checkpoints)


def checkpoint_all(db: Any, signer: Signer, now: datetime) -> int:
    """Checkpoint every account whose head moved since its last checkpoint, one short transaction each."""
    with db.connect() as conn:
        due = repo.accounts_due_for_checkpoint(conn)
    made = 0
    for account_id in due:
        with db.begin() as conn:
            if checkpoint_if_moved(conn, signer, account_id, now) is not None:
                made += 1
    return made


def checkpoint_at_startup(db: Database, signer: Signer, clock: Clock) -> None:
    """Start-up step: sign what moved while the server was down, before requests are served."""
    try:
        made = checkpoint_all(db, signer, clock.now())
    except Exception:  # never keep the server from starting; the hourly run retries
        log.exception("audit: start-up checkpoint run failed")
        return
    if made:
        log.info("audit: signed %d checkpoint(s) at start-up", made)


async def checkpoint_task(db: Database, signer: Signer, clock: Clock, interval_s: float) -> None:
    """Background task: every ``interval_s`` (setting ``checkpoint_interval_s``, default 3600), checkpoint
    every moved chain."""
    interval = max(1, int(interval_s))
    while True:
        await asyncio.sleep(interval)
        try:
            made = await asyncio.to_thread(checkpoint_all, db, signer, clock.now())
            if made:
                log.info("audit: signed %d checkpoint(s)", made)
        except Exception:  # keep the schedule going; the next run retries
            log.exception("audit: checkpoint run failed")


# --- verification ------------------------------------------------------------------------------


def verify_account(conn: Connection, account_id: str, keys: Iterable[PublicKey]) -> ChainReport:
    """Recompute the account's chain from the database and check it against its checkpoints and head."""
    head = repo.get_head(conn, account_id)
    cps = repo.list_checkpoints(conn, account_id)
    expected = (int(head.seq), str(head.head_hash)) if head is not None else None
    with contextlib.closing(repo.iter_rows(conn, account_id)) as rows:  # closes the server-side cursor
        return verify_chain(account_id, rows, cps, signature_check(keys), expected)


def verify_report_json(report: ChainReport, keys: Iterable[PublicKey]) -> dict[str, Any]:
    out = report.as_json()
    out["status"] = "ok" if report.ok else "broken"
    out["public_keys"] = [k.as_json() for k in keys]
    return out


# --- export and offline verification -----------------------------------------------------------


def export_lines(
    conn: Connection, account_id: str, email: str, keys: Iterable[PublicKey], now: datetime
) -> Iterator[str]:
    """JSON lines: a header, every entry in seq order, then every checkpoint in the order made.

    Each entry line is the hashed entry object plus ``type: "entry"`` and ``entry_hash``; each
    checkpoint line is the signed payload (``type: "powermeter.audit.checkpoint"``) plus
    ``signature``. Everything needed to verify offline.
    """
    head = repo.get_head(conn, account_id)
    yield canonical_json(
        {
            "type": "header",
            "format": EXPORT_FORMAT,
            "v": 1,
            "account_id": account_id,
            "email": email,
            "exported_at": format_timestamp(now),
            "head_seq": 0 if head is None else int(head.seq),
            "head_hash": GENESIS_HASH if head is None else head.head_hash,
            "public_keys": [k.as_json() for k in keys],
        }
    )
    for row in repo.iter_rows(conn, account_id):
        seq, eid, action, receipt, key_id, masked, details, ts, prev, entry_hash = row
        yield canonical_json(
            {
                "type": "entry",
                "account_id": account_id,
                "action_type": action,
                "actor_key_id": key_id,
                "actor_masked_key": masked,
                "details": parse_json(details),
                "entry_hash": entry_hash,
                "id": eid,
                "prev_hash": prev,
                "receipt_id": receipt,
                "seq": seq,
                "timestamp": ts,
                "v": 1,
            }
        )
    for cp in repo.list_checkpoints(conn, account_id):
        yield canonical_json(cp.as_json())  # the signed payload (its type names it) plus the signature


class ExportFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ParsedExport:
    account_id: str
    header: dict[str, Any]
    rows: list[tuple[Any, ...]]
    checkpoints: list[Checkpoint]
    public_keys: list[PublicKey]


def parse_export(lines: Iterable[str]) -> ParsedExport:
    header: dict[str, Any] | None = None
    rows: list[tuple[Any, ...]] = []
    cps: list[Checkpoint] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line)
        except ValueError as e:
            raise ExportFormatError(f"line {n}: not JSON ({e})") from e
        if not isinstance(obj, dict):
            raise ExportFormatError(f"line {n}: not a JSON object")
        kind = obj.get("type")
        try:
            if kind == "header":
                if header is not None:
                    raise ExportFormatError(f"line {n}: a second header")
                if obj.get("format") != EXPORT_FORMAT:
                    raise ExportFormatError(f"line {n}: not a {EXPORT_FORMAT} file")
                header = obj
            elif kind == "entry":
                if header is not None and obj.get("account_id") != header["account_id"]:
                    raise ExportFormatError(f"line {n}: entry of another account")
                details = obj["details"]
                rows.append(
                    (
                        obj["seq"],
                        obj["id"],
                        obj["action_type"],
                        obj["receipt_id"],
                        obj["actor_key_id"],
                        obj["actor_masked_key"],
                        canonical_json(details) if isinstance(details, dict) else repr(details),
                        obj["timestamp"],
                        obj["prev_hash"],
                        obj["entry_hash"],
                    )
                )
            elif kind == CHECKPOINT_TYPE:
                cps.append(
                    Checkpoint(
                        account_id=obj["account_id"],
                        seq=obj["seq"],
                        head_hash=obj["head_hash"],
                        timestamp=obj["timestamp"],
                        key_id=obj["key_id"],
                        prev_checkpoint_hash=obj["prev_checkpoint_hash"],
                        signature=obj["signature"],
                    )
                )
            else:
                raise ExportFormatError(f"line {n}: unknown line type {kind!r}")
        except KeyError as e:
            raise ExportFormatError(f"line {n}: missing field {e}") from e
    if header is None:
        raise ExportFormatError("no header line")
    keys = [PublicKey.from_pem(k["public_key_pem"], k["key_id"]) for k in header.get("public_keys", [])]
    return ParsedExport(str(header["account_id"]), header, rows, cps, keys)


def verify_export(parsed: ParsedExport, keys: Iterable[PublicKey] | None = None) -> ChainReport:
    """Verify an exported log offline, with the given public keys (default: the ones in the file)."""
    use = list(keys) if keys is not None else parsed.public_keys
    return verify_chain(parsed.account_id, parsed.rows, parsed.checkpoints, signature_check(use))


# --- listing -----------------------------------------------------------------------------------


def entry_json(row: Any, verified: bool) -> dict[str, Any]:
    """One entry in the seed's shape (``signature`` is the entry hash) plus the chain fields."""
    return {
        "id": row.id,
        "action_type": row.action_type,
        "receipt_id": row.receipt_id,
        "timestamp": row.timestamp,
        "signature": row.entry_hash,
        "verified": verified,
        "seq": int(row.seq),
        "prev_hash": row.prev_hash,
        "actor_key_id": row.actor_key_id,
        "actor_masked_key": row.actor_masked_key,
        "details": _details_or_raw(row.details),
    }


def _details_or_raw(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return text


def list_logs(
    conn: Connection,
    account_id: str,
    keys: Iterable[PublicKey],
    *,
    action_type: str | None,
    receipt_id: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int, ChainReport]:
    """Newest entries first; ``verified`` says whether the chain checks out up to each one, now."""
    report = verify_account(conn, account_id, keys)
    rows, total = repo.list_entries(conn, account_id, action_type=action_type, receipt_id=receipt_id, limit=limit)
    good = report.verified_through_seq
    return [entry_json(r, int(r.seq) <= good) for r in rows], total, report
