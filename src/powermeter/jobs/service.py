"""Compute-job service: estimate, enforce the kWh cap, store receipts, sign one tree per request.

One unit of work per request, inside the caller's transaction (``tx.conn``):

1. resolve every job's location and constants (all invalid jobs are reported together, by index
   and field; nothing is stored);
2. the formula for every job (:class:`ComputeJobEstimator`, profiles memoised);
3. the plan's daily kWh cap for the whole request (refused whole with ``USAGE_CAP_EXCEEDED``);
4. one canonical-JSON receipt per job → Merkle tree → one Ed25519 signature over the tree head;
5. one ``executemany`` for the receipts; a duplicate ``job_id`` inside the request is a 400 naming
   every duplicate; a ``job_id`` already stored for the account is a re-report: same inputs → the
   stored receipt is returned (nothing stored or counted again), different inputs → ``409
   JOB_ID_CONFLICT`` naming every conflicting job and field (see :meth:`ComputeJobs.record`).
"""

from __future__ import annotations

import base64
import contextlib
import gc
import math
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from powermeter.accounts import service as accounts
from powermeter.accounts.service import Principal
from powermeter.audit.anchors import anchor_tree
from powermeter.data.hardware import HardwareTables, load_hardware
from powermeter.data.locations import LocationIndex, load_locations, location_lookup
from powermeter.infra.clock import utc_iso
from powermeter.infra.db.faults import UNIQUE_VIOLATIONS
from powermeter.infra.db.unit_of_work import HotRows, hot_rows
from powermeter.infra.errors import Conflict, NotFound, ValidationFailed, validation_errors
from powermeter.infra.security import Signer
from powermeter.jobs import integrity
from powermeter.jobs import receipts as rc
from powermeter.jobs import repository as repo
from powermeter.jobs.receipts import ProfileDoc
from powermeter.jobs.repository import StoredReceipt
from powermeter.jobs.schemas import MAX_BATCH_JOBS, BatchIn, JobIn
from powermeter.jobs.tables import receipt_trees
from powermeter.methodology.canonical import number_fragments, string_bytes
from powermeter.methodology.compute_job import (
    BatchEstimate,
    ComputeJobEstimator,
    JobProfile,
    UnknownLocationError,
)
from powermeter.methodology.measured import apply_measurements, implausibility_warnings, modelled_sources
from powermeter.methodology.merkle import audit_paths, leaf_hash, merkle_root, tree_head_bytes
from powermeter.methodology.occurrence import BOUNDS_TEXT, check_bounds, format_instant, parse_instant

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

LOCATIONS_HINT = "see GET /v1/locations for the accepted codes"
_INDEX = re.compile(r"^jobs\[(\d+)\]")
PUBLIC_KEY_PATH = "/v1/receipts/public-key"


class ComputeJobs:
    """Process-wide singleton: datasets, the estimator (profile cache) and pre-rendered documents."""

    def __init__(self, locations: LocationIndex | None = None, hardware: HardwareTables | None = None) -> None:
        self.locations = locations or load_locations()
        self.hardware = hardware or load_hardware()
        self.estimator = ComputeJobEstimator(self.hardware, location_lookup(self.locations))
        self.dataset_versions = {"hardware": self.hardware.version, "locations": self.locations.version}
        self._profile_docs: dict[tuple[object, ...], ProfileDoc] = {}
        self._lock = threading.Lock()
        self._locations_body: bytes | None = None

    def profile_doc(self, profile: JobProfile) -> ProfileDoc:
        key = (profile.location_code, profile.factors, profile.warnings)
        doc = self._profile_docs.get(key)
        if doc is None:
            doc = rc.make_profile_doc(profile.factors, profile.location_code, self.dataset_versions, profile.warnings)
            with self._lock:
                if len(self._profile_docs) > 8192:
                    self._profile_docs.clear()
                self._profile_docs[key] = doc
        return doc

    # --- parsing ------------------------------------------------------------------------------------
    def parse_batch(self, raw: bytes) -> BatchIn:
        """Validate a batch body (pydantic-core's JSON parser). On failure, every invalid job is
        reported at once: field errors and unknown locations together, each with its index."""
        try:
            return BatchIn.model_validate_json(raw)
        except PydanticValidationError as exc:
            errors = validation_errors(RequestValidationError(exc.errors()))
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        seen = {e["field"] for e in errors}
        jobs = doc.get("jobs") if isinstance(doc, dict) else None
        if isinstance(jobs, list):
            for i, job in enumerate(jobs):
                if not isinstance(job, dict):
                    continue
                for name in ("geo_iso", "region"):
                    value = job.get(name)
                    if not isinstance(value, str) or f"jobs[{i}].{name}" in seen:
                        continue
                    code = value
                    if name == "region" and isinstance(job.get("provider"), str):
                        code = f"{job['provider']}:{value}"
                    if self.locations.resolve(code) is None:
                        errors.append(
                            {"field": f"jobs[{i}].{name}", "message": f"unknown location {code!r}; {LOCATIONS_HINT}"}
                        )
        for e in errors:
            m = _INDEX.match(e["field"])
            if m:
                e["index"] = int(m.group(1))
        errors.sort(key=lambda e: (e.get("index", -1), e["field"]))
        raise ValidationFailed(errors)

    # --- estimation ------------------------------------------------------------------------------
    def estimate(self, jobs: Sequence[JobIn], *, field_prefix: str) -> BatchEstimate:
        """Formula for every job; invalid locations are reported for every job at once."""
        try:
            return self.estimator.estimate_batch(jobs)
        except (UnknownLocationError, ValueError) as exc:
            first_error = exc
        errors: list[dict[str, Any]] = []
        for i, job in enumerate(jobs):
            try:
                self.estimator.profile(job)
            except UnknownLocationError as exc:
                errors.append(
                    {
                        "field": f"{field_prefix.format(i=i)}{exc.field_name}",
                        "message": f"unknown location {exc.value!r}; {LOCATIONS_HINT}",
                        "index": i,
                        "value": exc.value,
                    }
                )
            except ValueError as exc:
                errors.append({"field": field_prefix.format(i=i).rstrip("."), "message": str(exc), "index": i})
        if not errors:  # pragma: no cover - estimate_batch only raises for per-job reasons
            raise first_error
        raise ValidationFailed(errors)

    # --- the unit of work ----------------------------------------------------------------------------
    def record(
        self,
        conn: Connection,
        principal: Principal,
        signer: Signer,
        now: datetime,
        jobs: Sequence[JobIn],
        *,
        field_prefix: str,
    ) -> Recorded:
        """Store every job's receipt. A ``job_id`` already stored for the account is a re-report: with
        the same inputs its existing receipt is returned (nothing is stored or counted again); with
        different inputs the whole request is refused with ``409 JOB_ID_CONFLICT`` listing every
        conflicting job and field. The duplicate check costs nothing on the normal path: the unique
        index refuses the insert, and only then are the stored inputs read and compared.

        In a SQLite group commit (a ``hot_rows`` unit: ``POST /v1/report``) a plain job is a leaf of its
        batch's tree for the account, signed and anchored once just before the COMMIT
        (:meth:`_record_in_batch_tree`)."""
        hot = hot_rows(conn) if len(jobs) == 1 else None
        if hot is not None:
            job, key = jobs[0], ("receipt_tree", principal.account_id)
            for item in hot.sealed(key):
                if item.job.job_id == job.job_id:  # recorded earlier in this batch: its tree is not written yet
                    return _pending_replay(item, hot.get(key), job, field_prefix)
            if isinstance(job, JobIn) and job.model_fields_set <= rc.BASE_FIELDS:
                return self._record_in_batch_tree(conn, hot, principal, signer, now, job, field_prefix)
        cols = _plain_columns(jobs)
        if cols is None:
            _reject_duplicates_in_request(jobs, field_prefix)
            occurred = _occurrence_range(jobs, now, field_prefix)
        else:  # a batch of plain jobs: no started_at, no measurement, no override (see _plain_columns)
            if len(set(cols.job_ids)) != len(jobs):
                _reject_duplicates_in_request(jobs, field_prefix)  # raises, naming every duplicate
            occurred = _span(cols.duration_minutes, now)
        batch = self.estimate(jobs, field_prefix=field_prefix)
        # measured components replace modelled ones (a plain job has none)
        measurements = apply_measurements(jobs, batch) if cols is None else None
        try:
            rec = self._write(conn, principal, signer, now, jobs, batch, occurred, measurements, cols)
        except _AlreadyStored as dup:
            return self._replay(conn, principal, signer, now, jobs, dup.job_ids, field_prefix=field_prefix)
        # after the insert, so that a re-reported job is never counted twice (the cap still refuses
        # the whole request, rolled back with everything else)
        accounts.add_daily_kwh(conn, principal, batch.total_energy_kwh, now)
        return rec

    def _record_in_batch_tree(
        self,
        conn: Connection,
        hot: HotRows,
        principal: Principal,
        signer: Signer,
        now: datetime,
        job: JobIn,
        field_prefix: str,
    ) -> Recorded:
        """One plain job (no ``started_at``, measurement or override) as the next leaf of the batch's open
        receipt tree for the account (docs/scaling.md, "Receipt trees once per batch").

        The first such request of the batch inserts the tree's row (its head still empty) and fixes its id,
        receipt id prefix and time, which every receipt of the tree shares (its ``issued_at``, as in a
        ``/v1/batch`` tree); each request inserts its receipt row (the unique index still refuses a re-reported
        job inside the request) and leaves its leaf to the batch. Just before the COMMIT,
        :func:`_seal_receipt_tree` computes the root, signs the head once, completes the row and anchors the
        tree in the audit chain once. A request whose work rolls back leaves neither its receipt nor its leaf
        (and, if it opened the tree, not the tree)."""
        account_id = principal.account_id
        key = ("receipt_tree", account_id)
        opened: _OpenTree | None = hot.get(key)
        created = opened is None
        tree = opened if opened is not None else self._open_tree(conn, account_id, signer, now)
        items: list[_PendingLeaf] = hot.sealed(key)
        index = len(items)
        batch = self.estimate([job], field_prefix=field_prefix)
        profile_docs = [self.profile_doc(p) for p in batch.profiles]
        pid = profile_docs[0].id
        merged = items[-1].profile_ids if items else ()
        if pid in merged:
            profile_index = merged.index(pid)
        else:
            profile_index, merged = len(merged), (*merged, pid)
        rid = tree.prefix + _HEX4[index]
        d, c, m, g, geo = job.duration_minutes, job.cpu_cores, job.memory_gb, job.gpu_cores, job.geo_iso
        builder = rc.LeafBuilder(account_id, tree.issued_at, profile_docs)
        leaf = rc.plain_leaf_hashes(
            builder, [rid], [job.job_id], [geo], [d], [c], [m], [g], batch.energy_kwh, batch.co2_g, batch.cpu_kwh,
            batch.gpu_kwh, batch.memory_kwh, batch.profile_index, [p.pue_value for p in batch.profiles],
        )[0]  # fmt: skip
        repo.ensure_profiles(conn, profile_docs)
        kwh, co2 = batch.energy_kwh[0], batch.co2_g[0]
        row = [rid, account_id, job.job_id, tree.seq, index, profile_index, kwh, co2, geo, None]
        try:
            repo.insert_receipts(conn, [row])
        except UNIQUE_VIOLATIONS:
            # the tree this request opened stays empty: not kept; one opened earlier in the batch stays
            dup = _already_stored(conn, account_id, [job], tree.seq, [] if created else None)
            if dup is None:
                raise
            return self._replay(conn, principal, signer, now, [job], dup.job_ids, field_prefix=field_prefix)
        if created:
            hot.put(key, tree)
        details = (batch.cpu_kwh[0], batch.gpu_kwh[0], batch.memory_kwh[0], d, c, m, g)
        item = _PendingLeaf(job, batch, rid, leaf, merged, _span([d], tree.issued), details)
        hot.seal(key, item, partial(_seal_receipt_tree, signer, tree))
        accounts.add_daily_kwh(conn, principal, batch.total_energy_kwh, now)
        return Recorded(batch, [rid], tree.issued_at, tree.tree_id, None, batch.energy_kwh, batch.co2_g, None, None)

    @staticmethod
    def _insert_tree_then_receipts(
        conn: Connection,
        principal: Principal,
        jobs: Sequence[JobIn],
        tree_row: dict[str, Any],
        profile_docs: list[ProfileDoc],
        rows: list[list[Any]],
        cols: _Columns | None,
        receipt_ids: list[str],
        batch: BatchEstimate,
    ) -> int:
        """The tree, then its receipts (a duplicate ``job_id`` raises :class:`_AlreadyStored` with the tree
        undone); returns the tree's ``seq``."""
        tree_seq = repo.insert_tree(conn, tree_row)
        repo.ensure_profiles(conn, profile_docs)
        account_id = principal.account_id
        try:
            if cols is not None:
                repo.insert_plain_receipts(
                    conn, account_id, tree_seq, receipt_ids, cols.job_ids, batch.profile_index, batch.energy_kwh,
                    batch.co2_g, cols.geo_iso,
                )  # fmt: skip
            else:
                for r in rows:
                    r[3] = tree_seq
                repo.insert_receipts(conn, rows)
        except UNIQUE_VIOLATIONS:
            dup = _already_stored(conn, account_id, jobs, tree_seq, receipt_ids)
            if dup is None:
                raise
            raise dup from None
        return tree_seq

    @staticmethod
    def _open_tree(conn: Connection, account_id: str, signer: Signer, now: datetime) -> _OpenTree:
        issued_at = utc_iso(now)
        tree_id = "tree_" + secrets.token_hex(10)
        seq = repo.insert_tree(
            conn,
            {
                "tree_id": tree_id, "account_id": account_id, "tree_size": 0, "root_sha256": "",
                "issued_at": issued_at, "key_id": signer.key_id, "signature": "", "leaf_hashes": b"",
                "profile_ids": "[]", "details": b"{}", "created_at": _db_datetime(conn, now),
            },
        )  # fmt: skip
        return _OpenTree(seq, tree_id, account_id, issued_at, parse_instant(issued_at), signer.key_id,
                         "rcpt_" + secrets.token_hex(8))  # fmt: skip

    def _write(
        self,
        conn: Connection,
        principal: Principal,
        signer: Signer,
        now: datetime,
        jobs: Sequence[JobIn],
        batch: BatchEstimate,
        occurred: tuple[str, str],
        measurements: list[dict[str, Any] | None] | None,
        cols: _Columns | None = None,
    ) -> Recorded:
        n = len(jobs)
        issued_at = utc_iso(now)
        profile_docs = [self.profile_doc(p) for p in batch.profiles]
        builder = rc.LeafBuilder(principal.account_id, issued_at, profile_docs)
        # Receipt ids: a random 64-bit request prefix + the job's index in hex (ASCII only: the
        # batch loop writes them into the leaf without JSON escaping). Sequential ids keep the unique
        # index's inserts local, which makes a 10,000-row insert ~2× faster than random ids.
        prefix = "rcpt_" + secrets.token_hex(8)
        width = max(4, len(f"{n - 1:x}"))
        receipt_ids = _receipt_ids(prefix, width, n)
        tree_id = "tree_" + secrets.token_hex(10)
        created = _db_datetime(conn, now)
        account_id = principal.account_id

        rows: list[list[Any]] = []
        with gc_paused():
            if cols is not None:  # column by column (a batch of plain jobs)
                hashes = rc.plain_leaf_hashes(
                    builder, receipt_ids, cols.job_ids, cols.geo_iso, cols.duration_minutes, cols.cpu_cores,
                    cols.memory_gb, cols.gpu_cores, batch.energy_kwh, batch.co2_g, batch.cpu_kwh, batch.gpu_kwh,
                    batch.memory_kwh, batch.profile_index, [p.pue_value for p in batch.profiles],
                )  # fmt: skip
            else:  # job by job
                hashes, rows = _encode(jobs, batch, builder, receipt_ids, account_id, measurements)
        root = merkle_root(hashes)
        head = tree_head_bytes(root=root, tree_size=n, issued_at=issued_at, key_id=signer.key_id)
        signature = signer.sign_b64(head)

        tree_row = {
            "tree_id": tree_id,
            "account_id": principal.account_id,
            "tree_size": n,
            "root_sha256": root.hex(),
            "issued_at": issued_at,
            "key_id": signer.key_id,
            "signature": signature,
            "leaf_hashes": b"".join(hashes),
            "profile_ids": orjson.dumps([d.id for d in profile_docs]).decode(),
            "details": _details(jobs, batch, measurements, cols),
            "created_at": created,
        }
        if conn.dialect.name == "postgresql" and cols is None and n <= repo.PG_SMALL_INSERT:
            # a report on PostgreSQL: the tree and its receipts in one round trip
            repo.ensure_profiles(conn, profile_docs)
            tree_seq, inserted = repo.insert_tree_and_receipts(conn, tree_row, rows)
            if inserted != n:
                dup = _already_stored(conn, account_id, jobs, tree_seq, receipt_ids)
                if dup is None:  # pragma: no cover - only a duplicate is skipped
                    raise RuntimeError(f"{n - inserted} receipt(s) of tree {tree_id} were not stored")
                raise dup
            for r in rows:
                r[3] = tree_seq
        else:
            tree_seq = self._insert_tree_then_receipts(conn, principal, jobs, tree_row, profile_docs, rows, cols,
                                                       receipt_ids, batch)  # fmt: skip
        tree_head = rc.signed_tree_head(
            root=root, tree_size=n, issued_at=issued_at, key_id=signer.key_id, signature_b64=signature
        )
        anchor_tree(
            conn,
            account_id=account_id,
            now=now,
            kind="receipt_tree",
            tree_id=tree_id,
            root_hex=root.hex(),
            tree_size=n,
            issued_at=issued_at,
            key_id=signer.key_id,
            signature=signature,
            occurred=occurred,
            ids={"receipt_id_prefix": prefix, "receipt_id_width": width},
        )
        return Recorded(
            batch, receipt_ids, issued_at, tree_id, tree_head, batch.energy_kwh, batch.co2_g, None, measurements
        )

    def _replay(
        self,
        conn: Connection,
        principal: Principal,
        signer: Signer,
        now: datetime,
        jobs: Sequence[JobIn],
        stored_ids: set[str],
        *,
        field_prefix: str,
    ) -> Recorded:
        """Some jobs were reported before: compare inputs, then answer with the stored receipts
        (and record only the new jobs)."""
        stored = repo.stored_receipts(conn, principal.account_id, sorted(stored_ids))
        conflicts: list[dict[str, Any]] = []
        for i, job in enumerate(jobs):
            row = stored.get(job.job_id)
            if row is None:
                continue
            fields = differing_inputs(canonical_inputs(job), stored_inputs(row))
            if fields:
                conflicts.append(_conflict(i, job, row.receipt_id, fields, field_prefix))
        if conflicts:
            _raise_conflicts(conflicts)
        new = [i for i, job in enumerate(jobs) if job.job_id not in stored]
        sub = None
        if new:
            sub = self.record(conn, principal, signer, now, [jobs[i] for i in new], field_prefix=field_prefix)
        n = len(jobs)
        kwh = [0.0] * n
        co2 = [0.0] * n
        ids = [""] * n
        replayed: list[StoredReceipt | None] = [None] * n
        for i, job in enumerate(jobs):
            row = stored.get(job.job_id)
            if row is not None:
                kwh[i], co2[i], ids[i], replayed[i] = row.kwh, row.co2_grams, row.receipt_id, row
        if sub is not None:
            for k, i in enumerate(new):
                kwh[i], co2[i], ids[i] = sub.kwh[k], sub.co2[k], sub.receipt_ids[k]
                replayed[i] = None if sub.replayed is None else sub.replayed[k]
        return Recorded(
            sub.batch if sub is not None else None,
            ids,
            sub.issued_at if sub is not None else None,
            sub.tree_id if sub is not None else None,
            sub.tree_head if sub is not None else None,
            kwh,
            co2,
            replayed,
            None,  # a replayed job answers from its signed receipt; new ones' sources are in their tree
        )

    # --- responses ------------------------------------------------------------------------------------
    def report_data(self, job: JobIn, rec: Recorded, conn: Connection | None = None) -> dict[str, Any]:
        stored = rec.replayed[0] if rec.replayed is not None else None
        if stored is not None:
            if conn is None:  # pragma: no cover - the router passes its connection
                raise RuntimeError("a replayed receipt needs the connection to read it back")
            return self._replayed_report(conn, stored)
        if rec.batch is None:  # pragma: no cover - a new job always has an estimate
            raise RuntimeError("no estimate for a new job")
        est = rec.batch.job(0)
        p = est.profile
        sources = rec.measurements[0] if rec.measurements else None
        loc = self.locations.resolve(p.location_code)
        if loc is None:  # pragma: no cover - the profile was built from this index
            raise RuntimeError(f"location {p.location_code} vanished")
        out = {
            "job_id": job.job_id,
            "kwh": est.energy_kwh,
            "co2_grams": est.co2_g,
            "receipt_id": rec.receipt_ids[0],
            "timestamp": rec.issued_at,
            "breakdown": est.breakdown(),
            "location": {
                "code": loc.code,
                "name": loc.name,
                "kind": loc.kind,
                "intensity_g_per_kwh": loc.intensity_g_per_kwh,
                "year": loc.year,
            },
            "factors": [f.as_dict() for f in p.factors],
            "warnings": [*p.warnings, *implausibility_warnings(sources)],
            "methodology": dict(rc.METHODOLOGY),
            "energy_sources": sources or modelled_sources(),
        }
        if rec.pending_replay:
            out["replayed"] = True
        return out

    def _replayed_report(self, conn: Connection, stored: StoredReceipt) -> dict[str, Any]:
        """The response of the first report of this job, rebuilt from its signed receipt."""
        doc = receipt_document(conn, stored.account_id, stored.receipt_id)
        leaf = doc["receipt"]
        factors = leaf["factors"]
        code = leaf["location"]
        loc = self.locations.resolve(code)
        intensity = next((f["value"] for f in factors if f["name"] == "carbon_intensity"), None)
        location = {
            "code": code,
            "name": loc.name if loc is not None else code,
            "kind": loc.kind if loc is not None else "unknown",
            "intensity_g_per_kwh": intensity if intensity is not None else (loc.intensity_g_per_kwh if loc else 0.0),
            "year": loc.year if loc is not None else 0,
        }
        return {
            "job_id": doc["job_id"],
            "kwh": doc["kwh"],
            "co2_grams": doc["co2_grams"],
            "receipt_id": doc["receipt_id"],
            "timestamp": doc["timestamp"],
            "breakdown": leaf["results"]["breakdown"],
            "location": location,
            "factors": factors,
            "warnings": leaf["warnings"],
            "methodology": leaf["methodology"],
            "energy_sources": leaf["results"].get("energy_sources") or modelled_sources(),
            "replayed": True,
        }

    def batch_data(self, jobs: Sequence[JobIn], rec: Recorded) -> dict[str, Any]:
        kwh, co2, ids = rec.kwh, rec.co2, rec.receipt_ids
        out = [
            {"job_id": job.job_id, "kwh": kwh[i], "co2_grams": co2[i], "receipt_id": ids[i]}
            for i, job in enumerate(jobs)
        ]
        replayed = 0
        if rec.replayed is not None:
            for i, r in enumerate(rec.replayed):
                if r is not None:
                    out[i]["replayed"] = True
                    replayed += 1
        b = rec.batch
        warnings = [] if b is None else sorted({w for p in b.profiles for w in p.warnings})
        if rec.replayed is None and b is not None:  # every job new: the estimate's sums (math.fsum)
            total_kwh, total_co2 = b.total_energy_kwh, b.total_co2_g
        else:
            total_kwh, total_co2 = math.fsum(kwh), math.fsum(co2)
        return {
            "total_jobs": len(jobs),
            # exact (correctly rounded) sums of the listed values, not a running float sum
            "total_kwh": total_kwh,
            "total_co2_grams": total_co2,
            "jobs": out,
            "replayed_jobs": replayed,
            "warnings": warnings,
            "tree": None if rec.tree_id is None else {"tree_id": rec.tree_id, **(rec.tree_head or {})},
        }

    def locations_body(self) -> bytes:
        if self._locations_body is None:
            locs = [loc.as_dict() for loc in self.locations.all()]
            self._locations_body = orjson.dumps(
                {
                    "status": "success",
                    "data": {"locations": locs, "total": len(locs), "version": self.locations.version},
                }
            )
        return self._locations_body


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch allocates its ~100k short-lived objects.

    Reference counting still frees them; without the pause, the generational collector runs full
    sweeps over every live object of the process mid-batch (measured: a third of a 10,000-job
    request). Nested and concurrent uses are counted; the collector resumes when the last ends.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


# --- the batch path, column by column ------------------------------------------------------------------
#
# A 10,000-job batch used to spend most of its time in per-job Python: a loop that read each job's
# fields, formatted its two receipt templates, built its database row and its response object. In a
# *plain* batch (every job sets only the six base fields, the common case) the inputs are read once,
# column by column, and everything else is done a column at a time: one orjson call per number or
# string column, leaves joined and hashed in one loop (``receipts.plain_leaf_hashes``), receipts
# inserted from the columns. Same bytes (tests/integration/jobs/test_batch_columns.py holds the two
# paths equal: stored rows, tree, signature and response).

#: Below this many jobs the per-job path is as fast (and ``/v1/report``, one job, keeps it).
COLUMNAR_MIN_JOBS = 32

_BASE_COLUMNS = attrgetter("job_id", "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores", "geo_iso")
_FIELDS_SET = attrgetter("__pydantic_fields_set__")


@dataclass(frozen=True, slots=True)
class _Columns:
    """A plain batch's inputs, column by column (read once from the request models)."""

    job_ids: tuple[str, ...]
    duration_minutes: tuple[float, ...]
    cpu_cores: tuple[float, ...]
    memory_gb: tuple[float, ...]
    gpu_cores: tuple[float, ...]
    geo_iso: tuple[str, ...]


def _plain_columns(jobs: Sequence[Any]) -> _Columns | None:
    """The jobs' inputs as columns when there are at least :data:`COLUMNAR_MIN_JOBS` and every job is a
    request model that set no field beyond the six base ones: then every other field is at its default
    (``None``: no override, no measurement, no ``started_at``, no extra input; a unit test holds the
    schema to that), so nothing else of a job needs reading. ``None`` otherwise (the per-job path)."""
    if len(jobs) < COLUMNAR_MIN_JOBS:
        return None
    try:
        if not all(map(rc.BASE_FIELDS.issuperset, map(_FIELDS_SET, jobs))):
            return None
        job_ids, durations, cpus, memory, gpus, geo = zip(*map(_BASE_COLUMNS, jobs), strict=False)
    except AttributeError:  # not a request model (e.g. ``JobSpec``)
        return None
    return _Columns(job_ids, durations, cpus, memory, gpus, geo)


_HEX4 = [f"{i:04x}" for i in range(MAX_BATCH_JOBS)]


def _receipt_ids(prefix: str, width: int, n: int) -> list[str]:
    """``prefix`` + each index in ``width`` hex digits (the 4-digit ones of a batch are cached)."""
    if width == 4 and n <= len(_HEX4):
        return list(map(prefix.__add__, islice(_HEX4, n)))
    return [f"{prefix}{i:0{width}x}" for i in range(n)]


def _batch_numbers(jobs: Sequence[JobIn], batch: BatchEstimate, pues: list[float]) -> list[bytes] | None:
    """Every job's 11 receipt numbers in ECMAScript form from ONE orjson call (instead of two per job):
    inputs (cpu_cores, duration_minutes, gpu_cores, memory_gb) then results (cpu, gpu, memory,
    overhead kWh, PUE, gCO2e, kWh), in the order the canonical templates take them. ``None`` when any
    number needs :func:`~powermeter.methodology.canonical.json_number`; the per-job encoders then run."""
    flat: list[float] = []
    add = flat.extend
    kwh_l, co2_l, cpu_l, gpu_l, mem_l, pidx = (
        batch.energy_kwh, batch.co2_g, batch.cpu_kwh, batch.gpu_kwh, batch.memory_kwh, batch.profile_index,
    )  # fmt: skip
    for i, job in enumerate(jobs):
        e, ck, gk, mk = kwh_l[i], cpu_l[i], gpu_l[i], mem_l[i]
        add((
            float(job.cpu_cores), float(job.duration_minutes), float(job.gpu_cores), float(job.memory_gb),
            ck, gk, mk, e - (ck + gk + mk), pues[pidx[i]], co2_l[i], e,
        ))  # fmt: skip
    return number_fragments(flat)


def _encode(
    jobs: Sequence[JobIn],
    batch: BatchEstimate,
    builder: rc.LeafBuilder,
    receipt_ids: list[str],
    account_id: str,
    measurements: list[dict[str, Any] | None] | None = None,
) -> tuple[list[bytes], list[list[Any]]]:
    """Every job's leaf hash and database row (the hot loop of a batch); the rows' ``tree_seq``
    (index 3) is filled in once the tree is stored."""
    n = len(jobs)
    hashes: list[bytes] = [b""] * n
    rows: list[list[Any]] = [[]] * n
    kwh_l, co2_l = batch.energy_kwh, batch.co2_g
    cpu_l, gpu_l, mem_l, pidx = batch.cpu_kwh, batch.gpu_kwh, batch.memory_kwh, batch.profile_index
    pues = [p.pue_value for p in batch.profiles]
    states, locations, tails, issued = builder.states, builder.locations, builder.tails, builder.issued
    inputs_of, results_of, options_of, string_of, dumps, join = (
        rc.inputs_bytes, rc.results_bytes, rc.job_options, string_bytes, orjson.dumps, b"".join,
    )  # fmt: skip
    numbers = _batch_numbers(jobs, batch, pues)
    inputs_t, results_t = rc._INPUTS, rc._RESULTS
    for i, job in enumerate(jobs):
        j = pidx[i]
        options = options_of(job)
        d, c, m, g, geo, jid = (
            job.duration_minutes, job.cpu_cores, job.memory_gb, job.gpu_cores, job.geo_iso, job.job_id,
        )  # fmt: skip
        e, q, ck, gk, mk = kwh_l[i], co2_l[i], cpu_l[i], gpu_l[i], mem_l[i]
        if numbers is not None and options is None:
            k = 11 * i
            inputs = inputs_t % (numbers[k], numbers[k + 1], string_of(geo), numbers[k + 2], numbers[k + 3])
            results = results_t % tuple(numbers[k + 4 : k + 11])
        else:
            inputs = inputs_of(d, c, m, g, geo, options)
            results = results_of(e, q, ck, gk, mk, pues[j], None if measurements is None else measurements[i])
        rid = receipt_ids[i]
        # == builder.leaf_hash(j, inputs, jid, rid, results), inlined (this loop runs 10,000 times)
        h = states[j].copy()
        h.update(
            join(
                (
                    b',"inputs":', inputs, issued, b',"job_id":', string_of(jid), locations[j], b'"', rid.encode(),
                    b'","results":', results, tails[j],
                )
            )
        )  # fmt: skip
        hashes[i] = h.digest()
        rows[i] = [rid, account_id, jid, 0, i, j, e, q, geo, None if options is None else dumps(options).decode()]
    return hashes, rows


DETAIL_FIELDS = ("cpu_kwh", "gpu_kwh", "memory_kwh", "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores")


def _details(
    jobs: Sequence[JobIn],
    batch: BatchEstimate,
    measurements: list[dict[str, Any] | None] | None = None,
    cols: _Columns | None = None,
) -> bytes:
    """The tree's ``details`` blob: per-leaf breakdown and numeric inputs, columnar (orjson writes
    doubles in shortest round-trip form, so they read back bit for bit), plus ``extra``: the other
    inputs of the leaves that set any (leaf index → object), for the re-report comparison, and
    ``energy_sources`` per leaf only when a job of the tree carried a measurement. With ``cols`` (a
    plain batch, read once) the input columns are those (orjson writes a tuple as it writes a list)."""
    doc: dict[str, Any] = {
        "cpu_kwh": batch.cpu_kwh,
        "gpu_kwh": batch.gpu_kwh,
        "memory_kwh": batch.memory_kwh,
    }
    if cols is not None:
        doc["duration_minutes"] = cols.duration_minutes
        doc["cpu_cores"] = cols.cpu_cores
        doc["memory_gb"] = cols.memory_gb
        doc["gpu_cores"] = cols.gpu_cores
    else:
        doc["duration_minutes"] = [j.duration_minutes for j in jobs]
        doc["cpu_cores"] = [j.cpu_cores for j in jobs]
        doc["memory_gb"] = [j.memory_gb for j in jobs]
        doc["gpu_cores"] = [j.gpu_cores for j in jobs]
    if measurements is not None:
        doc["energy_sources"] = measurements
    if _SCHEMA_HAS_EXTRA_FIELDS and cols is None:  # only scan when the schema has such fields (~0.2 µs per job)
        stored_elsewhere = _STORED_ELSEWHERE
        extra = {}
        for i, j in enumerate(jobs):
            if not j.model_fields_set <= stored_elsewhere:
                e = job_extras(j)
                if e:
                    extra[str(i)] = e
        if extra:
            doc["extra"] = extra
    return orjson.dumps(doc)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a request recorded. ``batch``/``issued_at``/``tree_*`` describe the new receipts (``None``
    when every job was a re-report); ``kwh``, ``co2`` and ``receipt_ids`` cover every job in request
    order; ``replayed[i]`` is the stored receipt job *i* re-reported (``None``: no job was)."""

    batch: BatchEstimate | None
    receipt_ids: list[str]
    issued_at: str | None
    tree_id: str | None
    tree_head: dict[str, Any] | None
    kwh: list[float]
    co2: list[float]
    replayed: list[StoredReceipt | None] | None
    measurements: list[dict[str, Any] | None] | None = None
    # a re-report of a job recorded earlier in the same group-commit batch (its tree not written yet):
    # answered from the batch's memory (``batch``, ``receipt_ids``, ``issued_at`` are the first report's)
    pending_replay: bool = False


class _AlreadyStored(Exception):
    def __init__(self, job_ids: set[str]) -> None:
        super().__init__(f"{len(job_ids)} job id(s) already stored")
        self.job_ids = job_ids


def _already_stored(
    conn: Connection, account_id: str, jobs: Sequence[JobIn], tree_seq: int, receipt_ids: Sequence[str] | None
) -> _AlreadyStored | None:
    """After a refused or short receipt insert: the jobs already stored outside tree ``tree_seq`` (``None``:
    none, the failure was something else). This attempt is undone inside the transaction first (SQLite keeps
    the rows inserted before the failing one): the tree and its ``receipt_ids``, or nothing with ``None``."""
    dupes = repo.existing_job_ids(conn, account_id, [j.job_id for j in jobs], other_than_tree=tree_seq)
    if not dupes:
        return None
    if receipt_ids is not None:
        repo.delete_tree(conn, tree_seq, receipt_ids)
    return _AlreadyStored(dupes)


# --- receipt trees once per group-commit batch (SQLite ``hot_rows`` units) -------------------------------


@dataclass(frozen=True, slots=True)
class _OpenTree:
    """A batch's receipt tree for one account, while its leaves are added (its row's head still empty)."""

    seq: int
    tree_id: str
    account_id: str
    issued_at: str  # every receipt of the tree was issued at this instant (the first request's)
    issued: datetime
    key_id: str
    prefix: str  # receipt ids: prefix + leaf index in 4 hex digits


@dataclass(frozen=True, slots=True)
class _PendingLeaf:
    """One request's receipt in its batch's open tree (``HotRows.seal`` item)."""

    job: JobIn
    batch: BatchEstimate
    receipt_id: str
    leaf: bytes
    profile_ids: tuple[str, ...]  # the tree's profile ids up to this leaf (receipts.profile_index → id)
    occurred: tuple[str, str]
    details: tuple[float, ...]  # cpu_kwh, gpu_kwh, memory_kwh, duration_minutes, cpu_cores, memory_gb, gpu_cores


def _seal_receipt_tree(signer: Signer, tree: _OpenTree, conn: Connection, items: list[_PendingLeaf]) -> None:
    """Just before the batch's COMMIT: the open tree's root over its leaves (in request order), its head
    signed once, its row completed and the tree anchored in the account's audit chain once."""
    n = len(items)
    hashes = [it.leaf for it in items]
    root = merkle_root(hashes)
    signature = signer.sign_b64(tree_head_bytes(root=root, tree_size=n, issued_at=tree.issued_at, key_id=tree.key_id))
    columns = list(zip(*(it.details for it in items), strict=True))
    details = orjson.dumps(dict(zip(DETAIL_FIELDS, columns, strict=True)))
    repo.complete_tree(conn, tree.seq, n, root.hex(), signature, b"".join(hashes), items[-1].profile_ids, details)
    anchor_tree(
        conn,
        account_id=tree.account_id,
        now=tree.issued,
        kind="receipt_tree",
        tree_id=tree.tree_id,
        root_hex=root.hex(),
        tree_size=n,
        issued_at=tree.issued_at,
        key_id=tree.key_id,
        signature=signature,
        occurred=(min(it.occurred[0] for it in items), max(it.occurred[1] for it in items)),
        ids={"receipt_id_prefix": tree.prefix, "receipt_id_width": 4},
    )


def _pending_replay(item: _PendingLeaf, tree: _OpenTree, job: JobIn, field_prefix: str) -> Recorded:
    """A re-report of a job recorded earlier in this batch: the same answer, or a conflict."""
    fields = differing_inputs(canonical_inputs(job), canonical_inputs(item.job))
    if fields:
        _raise_conflicts([_conflict(0, job, item.receipt_id, fields, field_prefix)])
    b = item.batch
    return Recorded(b, [item.receipt_id], tree.issued_at, None, None, b.energy_kwh, b.co2_g, None, pending_replay=True)


def _conflict(i: int, job: JobIn, receipt_id: str, fields: list[str], field_prefix: str) -> dict[str, Any]:
    return {
        "field": f"{field_prefix.format(i=i)}job_id",
        "index": i,
        "job_id": job.job_id,
        "receipt_id": receipt_id,
        "fields": fields,
        "message": f"job_id {job.job_id!r} already has receipt {receipt_id} with different "
        f"inputs ({', '.join(fields)}); re-send the same inputs to get that receipt back, or use "
        "a new job_id",
    }


def _raise_conflicts(conflicts: list[dict[str, Any]]) -> None:
    raise Conflict("; ".join(c["message"] for c in conflicts), code="JOB_ID_CONFLICT", extra={"conflicts": conflicts})


# --- "same inputs": the canonical inputs of a job -------------------------------------------------------
#
# Generic over the request schema: every field of ``JobIn`` except ``job_id`` is an input, so a field
# added to the schema is compared without a change here. A field left at its default (or sent as
# its default) is omitted, so ``{"cpu_cores": 0}`` and no ``cpu_cores`` are the same inputs.
# Stored side: the four numbers live in the tree's ``details``, ``geo_iso`` and the overrides in the
# receipt row, and any other field in ``details["extra"]`` (written only for jobs that set one).


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        if not f.is_required():
            out[name] = f.get_default(call_default_factory=True)
    return out


_JOB_DEFAULTS = _defaults(JobIn)
_STORED_ELSEWHERE = frozenset({"job_id", "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores", "geo_iso"}) | set(
    rc.OPTION_FIELDS
)


#: Whether ``JobIn`` has inputs beyond the four numbers, ``geo_iso`` and the overrides (fields added
#: by later features); only then does a batch look for them.
_SCHEMA_HAS_EXTRA_FIELDS = bool(set(JobIn.model_fields) - _STORED_ELSEWHERE)


def _normalise(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in inputs.items()
        if k != "job_id" and v is not None and not (k in _JOB_DEFAULTS and v == _JOB_DEFAULTS[k])
    }


def canonical_inputs(job: BaseModel) -> dict[str, Any]:
    """A job's inputs as compared for a re-report (JSON values; defaults omitted)."""
    return _normalise(job.model_dump(mode="json", exclude={"job_id"}))


def job_extras(job: BaseModel) -> dict[str, Any] | None:
    """Inputs stored neither as the four numbers, ``geo_iso`` nor an override (``None``: none set)."""
    names = job.model_fields_set - _STORED_ELSEWHERE
    if not names:
        return None
    extra = _normalise(job.model_dump(mode="json", include=names))
    return extra or None


def stored_inputs(row: StoredReceipt) -> dict[str, Any]:
    return _normalise(row.inputs)


def differing_inputs(sent: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Names of the inputs that differ (sorted); numbers compare by value (8 == 8.0)."""
    return sorted(k for k in sent.keys() | stored.keys() if sent.get(k) != stored.get(k))


def _reject_duplicates_in_request(jobs: Sequence[JobIn], field_prefix: str) -> None:
    if len({job.job_id for job in jobs}) == len(jobs):
        return
    first: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    for i, job in enumerate(jobs):
        j = first.setdefault(job.job_id, i)
        if j != i:
            errors.append(
                {
                    "field": f"{field_prefix.format(i=i)}job_id",
                    "message": f"duplicate job_id {job.job_id!r} (also jobs[{j}]); job ids are unique per account",
                    "index": i,
                    "value": job.job_id,
                }
            )
    if errors:
        raise ValidationFailed(errors)


def _occurrence_range(jobs: Sequence[JobIn], now: datetime, field_prefix: str) -> tuple[str, str]:
    """The earliest and latest occurrence time of the request's jobs (``started_at``, else received
    time minus duration), as canonical UTC strings; a ``started_at`` out of bounds is a 400."""
    lo: datetime | None = None
    hi: datetime | None = None
    errors: list[dict[str, Any]] = []
    # Jobs without ``started_at`` occurred at ``now - duration``, which decreases as the duration grows
    # (timedelta's rounding to microseconds is monotonic too): their earliest and latest moments are
    # those of the longest and shortest durations, without a datetime per job.
    durations = [job.duration_minutes for job in jobs if job.started_at is None]
    if durations:
        lo = now - timedelta(minutes=max(durations))
        hi = now - timedelta(minutes=min(durations))
    if lo is not None and hi is not None and len(durations) == len(jobs):
        return format_instant(lo), format_instant(hi)
    for i, job in enumerate(jobs):
        if job.started_at is None:
            continue
        moment = parse_instant(job.started_at)
        if not check_bounds(moment, now):
            errors.append(
                {
                    "field": f"{field_prefix.format(i=i)}started_at",
                    "message": f"started_at must be {BOUNDS_TEXT}",
                    "index": i,
                    "value": job.started_at,
                }
            )
            continue
        lo = moment if lo is None or moment < lo else lo
        hi = moment if hi is None or moment > hi else hi
    if errors:
        raise ValidationFailed(errors)
    if lo is None or hi is None:  # pragma: no cover - a request has at least one job
        raise ValidationFailed([{"field": "jobs", "message": "no job"}])
    return format_instant(lo), format_instant(hi)


def _span(durations: Sequence[float], now: datetime) -> tuple[str, str]:
    """The occurrence range of jobs without ``started_at`` (each occurred at ``now - duration``)."""
    return (
        format_instant(now - timedelta(minutes=max(durations))),
        format_instant(now - timedelta(minutes=min(durations))),
    )


def _db_datetime(conn: Connection, now: datetime) -> Any:
    """``now`` as the driver expects it for the trees' ``created_at`` column."""
    col_type = receipt_trees.c.created_at.type
    proc = col_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return proc(now) if proc is not None else now


# --- reading receipts -----------------------------------------------------------------------------------


def receipt_document(conn: Connection, account_id: str, receipt_id: str) -> dict[str, Any]:
    """The full, self-verifiable receipt: signed receipt object, audit path and signed tree head."""
    row = repo.get_receipt(conn, account_id, receipt_id)
    if row is None:
        raise NotFound(f"no receipt {receipt_id!r} in this account", code="RECEIPT_NOT_FOUND")
    profile_id = orjson.loads(row.profile_ids)[row.profile_index]
    body = repo.profile_body(conn, profile_id)
    if body is None:  # pragma: no cover - guarded by the write path
        raise RuntimeError(f"profile {profile_id} of receipt {receipt_id} is missing")
    builder = rc.LeafBuilder(row.account_id, row.issued_at, [rc.profile_doc_from_body(body)])
    options = orjson.loads(row.options) if row.options else None
    det = orjson.loads(row.details)
    i = row.leaf_index
    inputs = rc.inputs_bytes(
        det["duration_minutes"][i], det["cpu_cores"][i], det["memory_gb"][i], det["gpu_cores"][i], row.geo_iso, options
    )
    pue = float(next(f["value"] for f in orjson.loads(body)["factors"] if f["name"] == "pue"))
    sources = det["energy_sources"][i] if "energy_sources" in det else None
    results = rc.results_bytes(
        row.kwh, row.co2_grams, det["cpu_kwh"][i], det["gpu_kwh"][i], det["memory_kwh"][i], pue, sources
    )
    leaf = builder.leaf(0, inputs, row.job_id, row.receipt_id, results)
    blob: bytes = row.leaf_hashes
    hashes = [blob[k : k + 32] for k in range(0, len(blob), 32)]
    root, paths = audit_paths(hashes)
    if leaf_hash(leaf) != hashes[row.leaf_index] or root.hex() != row.root_sha256:
        raise integrity.integrity_error(receipt_id, "the stored receipt no longer matches its signed Merkle leaf")
    return {
        "type": rc.DOCUMENT_TYPE,
        "receipt_id": row.receipt_id,
        "job_id": row.job_id,
        "kwh": row.kwh,
        "co2_grams": row.co2_grams,
        "timestamp": row.issued_at,
        "receipt": orjson.loads(leaf),
        "proof": {
            "leaf_index": row.leaf_index,
            "tree_size": row.tree_size,
            "audit_path": [h.hex() for h in paths[row.leaf_index]],
            "root_sha256": row.root_sha256,
        },
        "signed_tree_head": rc.signed_tree_head(
            root=root,
            tree_size=row.tree_size,
            issued_at=row.issued_at,
            key_id=row.key_id,
            signature_b64=row.signature,
        ),
    }


def list_receipts(
    conn: Connection, account_id: str, *, job_id: str | None, limit: int, offset: int, signer: Signer | None = None
) -> dict[str, Any]:
    """A page of receipts; with ``signer``, each is checked against its signed tree, and one that no
    longer matches is flagged (``integrity: "failed"`` and ``integrity_error`` with the reason)."""
    rows, total = repo.list_receipts(conn, account_id, job_id=job_id, limit=limit, offset=offset)
    failed = integrity.check_receipts(conn, integrity.checker_for(conn, signer), rows) if signer else {}

    def item(r: Any) -> dict[str, Any]:
        out = {
            "receipt_id": r.receipt_id,
            "job_id": r.job_id,
            "kwh": r.kwh,
            "co2_grams": r.co2_grams,
            "timestamp": r.issued_at,
        }
        f = failed.get(r.receipt_id)
        if f is not None:  # intact receipts keep the seed's five fields
            out["integrity"] = "failed"
            out["integrity_error"] = {"error_code": integrity.INTEGRITY_CODE, "reason": f.reason}
        return out

    return {
        "receipts": [item(r) for r in rows],
        "total": total,
        "has_more": offset + len(rows) < total,
    }


def public_key(signer: Signer) -> dict[str, Any]:
    return {
        "key_id": signer.key_id,
        "algorithm": rc.SIGNATURE_ALGORITHM,
        "public_key_pem": signer.public_key_pem(),
        "public_key_raw_b64": base64.b64encode(signer.public_key_raw).decode(),
    }


@dataclass(frozen=True, slots=True)
class ReceiptAccess:
    """A receipt was read (``VIEW``) or downloaded (``DOWNLOAD``): the event the audit log records."""

    action: str
    account_id: str
    receipt_id: str
    at: datetime
    actor_key_id: str | None = None
    actor_masked_key: str | None = None
    via: str | None = None  # "dashboard" when read there


ReceiptListener = Callable[["Connection", ReceiptAccess], None]


@dataclass(frozen=True, slots=True)
class ReceiptViews:
    """Reading a receipt is an audited act: one service for the API and the dashboard alike. The
    listeners (the audit log, subscribed by the composition root) run inside the reader's transaction."""

    signer: Signer
    listeners: tuple[ReceiptListener, ...] = ()

    def open(self, conn: Connection, access: ReceiptAccess, *, check_integrity: bool = True) -> dict[str, Any]:
        """The receipt document (see :func:`receipt_document`); with ``check_integrity`` the stored row
        is first checked against its signed tree (409 ``RECEIPT_TAMPERED`` when it does not match)."""
        if check_integrity:
            integrity.check_one(conn, self.signer, access.receipt_id, access.account_id)
        doc = receipt_document(conn, access.account_id, access.receipt_id)
        for listener in self.listeners:
            listener(conn, access)
        return doc
