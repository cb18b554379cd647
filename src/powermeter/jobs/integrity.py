"""Do the stored receipts still match what was signed?

A receipt row (kWh, gCO2e, job id, location, options, account…) is rebuilt into its canonical leaf
bytes with its tree's inputs and its factor profile, hashed, and compared with the leaf hash stored in
its tree; the tree's leaf hashes must give its root, and the root must carry the server's Ed25519
signature. An attacker who can write to the database but does not hold the secret key can change a
row, a tree's details, its leaf hashes and even its root, but cannot sign the new root: every such
change is caught here.

Used by ``GET /v1/receipts/{id}`` (409 ``RECEIPT_INTEGRITY_FAILED``), ``GET /v1/receipts`` (each item
flagged), emissions reports (altered receipts excluded and listed) and ``powermeter receipts check``
(every receipt, in bulk: one orjson call per tree for the numbers, one signature check per tree).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from powermeter.infra.errors import ApiError
from powermeter.jobs import receipts as rc
from powermeter.jobs import repository as repo
from powermeter.methodology.canonical import number_fragments, string_bytes
from powermeter.methodology.merkle import merkle_root, tree_head_bytes

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

INTEGRITY_CODE = "RECEIPT_INTEGRITY_FAILED"


class ReceiptIntegrityFailed(ApiError):
    status, code, slug = 409, INTEGRITY_CODE, "receipt_integrity_failed"


@dataclass(frozen=True, slots=True)
class Failure:
    receipt_id: str
    job_id: str
    account_id: str
    tree_id: str
    reason: str
    seq: int | None = None  # the receipt row's primary key (None: a row is missing)


@dataclass(slots=True)
class CheckResult:
    receipts: int = 0
    trees: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class Checker:
    """Checks trees and their receipts against one public key; caches profiles and verified heads."""

    def __init__(self, public_key: Ed25519PublicKey, key_id: str, conn: Connection) -> None:
        self.public_key = public_key
        self.key_id = key_id
        self.conn = conn
        self._profiles: dict[str, tuple[rc.ProfileDoc, float] | None] = {}

    def _profile(self, profile_id: str) -> tuple[rc.ProfileDoc, float] | None:
        if profile_id not in self._profiles:
            body = repo.profile_body(self.conn, profile_id)
            entry = None
            if body is not None:
                doc = rc.profile_doc_from_body(body)
                if doc.id == profile_id:  # content-addressed: an altered body no longer has its id
                    pue = float(next((f["value"] for f in orjson.loads(body)["factors"] if f["name"] == "pue"), 1.0))
                    entry = (doc, pue)
            self._profiles[profile_id] = entry
        return self._profiles[profile_id]

    def head_problem(self, tree: Any) -> str | None:
        """Why the tree's head is not what the server signed (``None`` when it is)."""
        blob: bytes = tree.leaf_hashes
        if len(blob) != 32 * tree.tree_size:
            return "the tree's leaf hashes do not match its size"
        hashes = [blob[k : k + 32] for k in range(0, len(blob), 32)]
        if merkle_root(hashes).hex() != tree.root_sha256:
            return "the tree's leaf hashes do not give its signed root"
        if tree.key_id != self.key_id:
            return f"the tree is signed with key {tree.key_id}, not this server's {self.key_id}"
        try:
            root = bytes.fromhex(tree.root_sha256)
            signature = base64.b64decode(tree.signature, validate=True)
            head = tree_head_bytes(root=root, tree_size=tree.tree_size, issued_at=tree.issued_at, key_id=tree.key_id)
            self.public_key.verify(signature, head)
        except (InvalidSignature, ValueError, binascii.Error):
            return "the tree head's signature does not verify"
        return None

    def check_tree(self, tree: Any, rows: Sequence[Any]) -> list[Failure]:
        """Failures of ``rows`` (receipts of ``tree`` with the columns of ``_RECEIPT_COLS``, any order)
        and of the tree itself. Rows are read by position (a named attribute costs ~1 µs a row)."""

        def fail(r: Any, reason: str) -> Failure:
            return Failure(r[1], r[3], r[2], tree.tree_id, reason, r[0])

        problem = self.head_problem(tree)
        if problem is not None:
            return [fail(r, problem) for r in rows]
        try:
            profile_ids = orjson.loads(tree.profile_ids)
            det = orjson.loads(tree.details)
        except orjson.JSONDecodeError:
            return [fail(r, "the tree's stored details are not readable") for r in rows]
        blob: bytes = tree.leaf_hashes
        size: int = tree.tree_size
        issued: str = tree.issued_at
        out: list[Failure] = []
        profiles: list[tuple[rc.ProfileDoc, float] | None] = [self._profile(p) for p in profile_ids]
        n_profiles = len(profiles)
        numbers = _numbers(rows, det, profiles)
        # per (account, profile): the hash state of everything before "inputs", and one template for the
        # rest of the leaf, so each receipt costs one bytes formatting, one hash update and one compare
        leaf_parts: dict[tuple[str, int], tuple[Any, bytes]] = {}
        seen: set[int] = set()
        string_of = string_bytes
        issued_b = (b',"issued_at":' + string_bytes(issued)).replace(b"%", b"%%")
        geos: dict[str, bytes] = {}
        for n, r in enumerate(rows):
            _seq, rid, acct, jid, _tree, i, j, kwh, co2, geo, options = r
            if not (0 <= i < size) or i in seen or not (0 <= j < n_profiles) or profiles[j] is None:
                out.append(fail(r, "the receipt's place in its tree or its factor profile was altered"))
                continue
            seen.add(i)
            prof = profiles[j]
            assert prof is not None  # noqa: S101 (checked above)
            parts = leaf_parts.get((acct, j))
            if parts is None:
                b = rc.LeafBuilder(acct, issued, [prof[0]])
                template = (
                    b',"inputs":'
                    + rc._INPUTS
                    + issued_b
                    + b',"job_id":%b'
                    + b.locations[0].replace(b"%", b"%%")
                    + b'%b,"results":'
                    + rc._RESULTS
                    + b.tails[0].replace(b"%", b"%%")
                )
                parts = leaf_parts[(acct, j)] = (b.states[0], template)
            state, template = parts
            try:
                if numbers is not None and not options:
                    k = 11 * n
                    g = geos.get(geo)
                    if g is None:
                        g = geos[geo] = string_of(geo)
                    tail = template % (
                        numbers[k],
                        numbers[k + 1],
                        g,
                        numbers[k + 2],
                        numbers[k + 3],
                        string_of(jid),
                        string_of(rid),
                        *numbers[k + 4 : k + 11],
                    )
                else:
                    opts = orjson.loads(options) if options else None
                    inputs = rc.inputs_bytes(
                        det["duration_minutes"][i],
                        det["cpu_cores"][i],
                        det["memory_gb"][i],
                        det["gpu_cores"][i],
                        geo,
                        opts,
                    )
                    sources = det["energy_sources"][i] if "energy_sources" in det else None  # measured jobs
                    results = rc.results_bytes(
                        kwh, co2, det["cpu_kwh"][i], det["gpu_kwh"][i], det["memory_kwh"][i], prof[1], sources
                    )
                    b = rc.LeafBuilder(acct, issued, [prof[0]])
                    tail = b._suffix(0, inputs, jid, rid, results)
                hs = state.copy()
                hs.update(tail)
                h = hs.digest()
            except (KeyError, IndexError, TypeError, ValueError, orjson.JSONDecodeError):
                out.append(fail(r, "the receipt's stored inputs are not readable"))
                continue
            if h != blob[32 * i : 32 * i + 32]:
                out.append(fail(r, "the stored receipt no longer matches its signed Merkle leaf"))
        return out


def _numbers(
    rows: Sequence[Any], det: dict[str, Any], profiles: Sequence[tuple[rc.ProfileDoc, float] | None]
) -> list[bytes] | None:
    """Every receipt's 11 leaf numbers in ECMAScript form from one orjson call (see
    ``service._batch_numbers``); ``None`` when one needs the per-receipt path."""
    flat: list[float] = []
    add = flat.extend
    try:
        dur, cores, gpus, mem = det["duration_minutes"], det["cpu_cores"], det["gpu_cores"], det["memory_gb"]
        ck_l, gk_l, mk_l = det["cpu_kwh"], det["gpu_kwh"], det["memory_kwh"]
        pue = [p[1] if p is not None else 0.0 for p in profiles]
        for r in rows:
            i, j, e, co2 = r[5], r[6], float(r[7]), float(r[8])
            ck, gk, mk = ck_l[i], gk_l[i], mk_l[i]
            add((cores[i], dur[i], gpus[i], mem[i], ck, gk, mk, e - (ck + gk + mk), pue[j], co2, e))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    try:
        return number_fragments(flat)
    except TypeError:  # a stored value that is not a number
        return None


def checker_for(conn: Connection, signer: Any) -> Checker:
    return Checker(signer.public_key, signer.key_id, conn)


def check_receipts(conn: Connection, checker: Checker, rows: Sequence[Any]) -> dict[str, Failure]:
    """Failures among ``rows`` (receipt rows with at least ``receipt_id`` and ``tree_seq``), by receipt id."""
    if not rows:
        return {}
    full, trees = repo.receipts_with_trees(conn, [r.seq for r in rows])
    by_tree: dict[int, list[Any]] = {}
    for r in full:
        by_tree.setdefault(r.tree_seq, []).append(r)
    out: dict[str, Failure] = {}
    for seq, group in by_tree.items():
        tree = trees.get(seq)
        if tree is None:
            for r in group:
                out[r.receipt_id] = Failure(r.receipt_id, r.job_id, r.account_id, "?", "the receipt's tree is missing")
            continue
        for f in checker.check_tree(tree, group):
            out[f.receipt_id] = f
    return out


def check_one(conn: Connection, signer: Any, receipt_id: str, account_id: str) -> None:
    """Raise 409 ``RECEIPT_INTEGRITY_FAILED`` when the account's receipt no longer matches what was signed."""
    row = repo.receipt_position(conn, account_id, receipt_id)
    if row is None:
        return
    failures = check_receipts(conn, checker_for(conn, signer), [row])
    if failures:
        raise integrity_error(receipt_id, failures[receipt_id].reason)


def integrity_error(receipt_id: str, reason: str) -> ReceiptIntegrityFailed:
    return ReceiptIntegrityFailed(
        f"receipt {receipt_id} failed its integrity check: {reason}. The stored record was changed after it "
        "was signed; it is not served or counted. Ask the operator to run 'powermeter receipts check'.",
        extra={"receipt_id": receipt_id, "reason": reason},
    )


Progress = Callable[[int, int], None]


def check_all(
    db_connect: Callable[[], Any],
    public_key: Ed25519PublicKey,
    key_id: str,
    progress: Progress | None = None,
    *,
    trees: tuple[int | None, int | None] = (None, None),
    stream: bool = True,
) -> CheckResult:
    """Every stored receipt and tree (or the trees with ``lo <= seq < hi`` of ``trees`` and their
    receipts), streamed: receipts in insertion order, trees alongside them.

    Also reports rows missing from a tree (deleted receipts) and receipts pointing at no tree."""
    result = CheckResult()
    with db_connect() as rconn, db_connect() as tconn, db_connect() as pconn:
        checker = Checker(public_key, key_id, pconn)
        total = repo.count_receipts_of_trees(rconn, *trees) if progress is not None else 0
        tree_iter = iter(repo.integrity_trees(tconn, *trees, stream=stream))
        trees_seen: dict[int, Any] = {}
        pending: dict[int, list[Any]] = {}
        exhausted = False

        def tree_of(seq: int) -> Any:
            nonlocal exhausted
            while seq not in trees_seen and not exhausted:
                t = next(tree_iter, None)
                if t is None:
                    exhausted = True
                    break
                trees_seen[t.seq] = t
            return trees_seen.get(seq)

        def finish(seq: int) -> None:
            tree = trees_seen.pop(seq)
            rows = pending.pop(seq, [])
            result.trees += 1
            result.failures.extend(checker.check_tree(tree, rows))
            if len(rows) < tree.tree_size:
                have = {r[5] for r in rows}
                missing = [i for i in range(tree.tree_size) if i not in have]
                result.failures.append(
                    Failure(
                        "?",
                        "?",
                        tree.account_id,
                        tree.tree_id,
                        f"{len(missing)} receipt row(s) of this signed tree are missing (leaf indexes "
                        f"{', '.join(map(str, missing[:10]))}{'…' if len(missing) > 10 else ''})",
                    )
                )

        rows_in: Iterable[Any] = repo.integrity_receipts(rconn, *trees, stream=stream)
        done = 0
        sizes: dict[int, int] = {}
        for r in rows_in:
            done += 1
            ts = r[4]
            size = sizes.get(ts)
            if size is None:
                tree = tree_of(ts)
                if tree is None:
                    result.failures.append(Failure(r[1], r[3], r[2], "?", "the receipt points at no stored tree", r[0]))
                    continue
                size = sizes[ts] = tree.tree_size
            group = pending.get(ts)
            if group is None:
                group = pending[ts] = []
            group.append(r)
            if len(group) >= size:
                del sizes[ts]
                finish(ts)
            if progress is not None and done % 100_000 == 0:
                progress(done, total)
        for seq in list(trees_seen):  # trees never completed: rows missing (or no rows at all)
            finish(seq)
        for t in tree_iter:
            trees_seen[t.seq] = t
            finish(t.seq)
        result.receipts = done
    return result


def _check_part(url: str, secret: str, lo: int | None, hi: int | None) -> CheckResult:
    """One worker's share of :func:`check_parallel`: the trees with ``lo <= seq < hi`` and their receipts."""
    from powermeter.infra.db import Database
    from powermeter.infra.security import Signer

    signer = Signer(secret)
    db = Database(url)
    try:
        return check_all(db.connect, signer.public_key, signer.key_id, trees=(lo, hi))
    finally:
        db.dispose()


def check_parallel(url: str, secret: str, workers: int) -> CheckResult:
    """:func:`check_all` split by tree over ``workers`` processes (each reads the receipts of its trees)."""
    from concurrent.futures import ProcessPoolExecutor

    from powermeter.infra.db import Database

    db = Database(url)
    try:
        with db.connect() as conn:
            first, last = repo.tree_seq_bounds(conn)
    finally:
        db.dispose()
    step = max(1, (last - first + workers) // workers)
    cuts: list[int | None] = [None] + [first + step * k for k in range(1, workers)] + [None]
    result = CheckResult()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = [pool.submit(_check_part, url, secret, cuts[k], cuts[k + 1]) for k in range(workers)]
        for f in parts:
            part = f.result()
            result.receipts += part.receipts
            result.trees += part.trees
            result.failures.extend(part.failures)
    return result
