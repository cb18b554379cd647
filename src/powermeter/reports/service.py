"""Emissions reports (GHG Protocol / ESRS E1) from compute-job receipts and AI inference records.

One unit of work: aggregate the account's records of the period in SQL, fold the partial sums into
report lines (``methodology.reporting``), list every covered record with its hash, build the RFC 6962
Merkle root over that list, sign the report head with the server's Ed25519 key, and record a
DOWNLOAD entry in the account's audit log in the caller's transaction.

Consistency: the totals and the coverage list must describe the same rows. On SQLite the caller's
``BEGIN IMMEDIATE`` transaction already keeps every writer out until it commits; on PostgreSQL the
reads run in their own REPEATABLE READ, READ ONLY transaction (one snapshot for every statement).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from powermeter.audit import service as audit
from powermeter.data.locations import load_locations
from powermeter.infra.clock import utc_iso
from powermeter.infra.db import Database
from powermeter.infra.errors import ValidationFailed
from powermeter.infra.security import Signer, verify_signature
from powermeter.jobs import integrity
from powermeter.methodology import reporting as rp
from powermeter.methodology.compute_job import METHOD_ID as JOB_METHOD_ID
from powermeter.methodology.compute_job import METHODOLOGY_VERSION as JOB_METHODOLOGY_VERSION
from powermeter.reports import render
from powermeter.reports import repository as repo

FORMATS = ("json", "csv", "html", "esrs")
GROUP_BY = rp.GROUP_BY
MAX_SPAN_DAYS = 3660  # ten years
JOB_METHODOLOGY = f"{JOB_METHODOLOGY_VERSION} ({JOB_METHOD_ID})"
NO_KEY_GROUP = "(key not recorded)"

Progress = Callable[[int, int], None]
_T = TypeVar("_T")

MEDIA_TYPES = {
    "json": "application/json",
    "esrs": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "html": "text/html; charset=utf-8",
}
EXTENSIONS = {"json": "json", "esrs": "esrs.json", "csv": "csv", "html": "html"}

REPORT_LIMITS = (
    "Figures are the energy, location-based emissions and water stored on each covered record when it "
    "was made (estimates from reference data, not metered values); nothing is recomputed.",
    "Location-based emissions only: market-based figures need contractual instruments (PPAs, guarantees "
    "of origin, supplier-specific factors) that the data do not hold.",
    "AI inference emissions include the embodied (hardware manufacture) share allocated by the EcoLogits "
    "methodology; compute-job emissions are electricity only.",
    "Water is estimated for AI inference records only; compute-job receipts carry no water figure "
    "(shown as n/a, not zero).",
    "A compute job counts as run on the account's own hardware (Scope 2) when its request said "
    "provider 'on-prem' (or 'own', 'on-premises', 'self-hosted'); every other job is purchased cloud "
    "capacity (Scope 3 Category 1).",
    "Compute-job receipts do not record the API key that created them; grouped by key, they appear "
    f"under '{NO_KEY_GROUP}'.",
    "The emission factor listed for AI inference records is the one recorded by the latest record of "
    "each month and site.",
)

SUMMARY = (
    "Energy (kWh), location-based emissions (kg CO2e) and water (L) are sums of the figures stored on the "
    "account's compute-job receipts (Green Algorithms formula) and AI inference records (EcoLogits "
    "methodology) timed within the period, aggregated in the database. Each line is booked in the GHG "
    "Protocol category the customer reports it under: jobs on the account's own hardware as Scope 2 "
    "(location-based), purchased cloud compute and AI services as Scope 3 Category 1."
)


# --- period --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime  # exclusive
    excluded: tuple[int, ...] = ()  # receipt rows (seq) left out: they failed their integrity check


def _parse_bound(value: str, name: str, *, end: bool) -> datetime:
    v = value.strip()
    try:
        if len(v) == 10:
            d = date.fromisoformat(v)
            moment = datetime.combine(d, time(0), tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment  # a date end is inclusive
        moment = datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        moment.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed(
            [{"field": name, "message": f"{value!r} is out of range: dates from 0001-01-02 to 9999-12-30"}]
        ) from None
    except ValueError:
        raise ValidationFailed(
            [{"field": name, "message": f"{value!r} is not an ISO 8601 date (2026-01-31) or date-time"}]
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_period(start: str | None, end: str | None, now: datetime) -> Period:
    """``start``/``end`` as ISO dates (end date inclusive) or date-times (end exclusive), UTC.
    Defaults: the calendar year of ``now`` up to the end of today."""
    today = now.astimezone(UTC).date()
    s = _parse_bound(start, "start", end=False) if start else datetime(today.year, 1, 1, tzinfo=UTC)
    e = _parse_bound(end, "end", end=True) if end else datetime.combine(today, time(0), tzinfo=UTC) + timedelta(1)
    if e <= s:
        raise ValidationFailed([{"field": "end", "message": "end must be after start"}])
    if (e - s).days > MAX_SPAN_DAYS:
        raise ValidationFailed([{"field": "end", "message": f"a report spans at most {MAX_SPAN_DAYS} days"}])
    return Period(s, e)


# --- building ------------------------------------------------------------------------------------------


@contextmanager
def snapshot(db: Database, conn: Connection) -> Iterator[Connection]:
    """A connection whose reads all see one snapshot of the database (see the module docstring)."""
    if conn.dialect.name != "postgresql":
        yield conn
        return
    with db.engine.connect() as raw:
        rconn = raw.execution_options(isolation_level="REPEATABLE READ")
        with rconn.begin():
            rconn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield rconn


def _job_profile(body: str) -> tuple[str, rp.EmissionFactorRef | None, dict[str, str]]:
    doc = orjson.loads(body)
    location = str(doc.get("location") or "?")
    factor = None
    for f in doc.get("factors") or ():
        if f.get("name") == "carbon_intensity":
            factor = rp.EmissionFactorRef(location, f.get("value"), f.get("source"), f.get("dataset_version"))
    versions = {str(k): str(v) for k, v in (doc.get("dataset_versions") or {}).items()}
    return location, factor, versions


def _location_label(code: str) -> str:
    loc = load_locations().resolve(code)
    return code if loc is None else f"{loc.name} ({loc.code})"


def _inference_site(details: str, fallback: str) -> tuple[str, rp.EmissionFactorRef | None, str, dict[str, str]]:
    """Location, grid factor, methodology version and dataset versions recorded with an inference
    record (``site``/``versions`` members; ``factors``/``methodology`` in earlier records)."""
    doc = orjson.loads(details)
    f = doc.get("site") or doc.get("factors") or {}
    location = str(f.get("location") or fallback)
    year = f.get("gridIntensityYear")
    value = f.get("gridIntensityGPerKwh")
    meth = {str(k): str(v) for k, v in (doc.get("versions") or doc.get("methodology") or {}).items()}
    source = f.get("gridIntensitySource")
    locations = load_locations()
    loc = locations.resolve(location)
    if loc is not None and loc.year == year and loc.intensity_g_per_kwh == value and (
        source is None or source == loc.source
    ):
        source = f"{loc.code} ({loc.name}), {loc.year}: {loc.source}"  # the compute-job receipts' wording
    elif source is not None:
        source = f"{location}, {year}: {source}"
    else:
        source = f"{location}, {year}: locations dataset {meth.get('locations', '(version not recorded)')}"
    factor = rp.EmissionFactorRef(location, value, source, meth.get("locations"))
    version = meth.pop("methodology", "ai-inference (version not recorded)")
    return location, factor, version, meth


def _aggregate(conn: Connection, account_id: str, period: Period, group_by: str) -> tuple[
    list[rp.AggregateRow], dict[str, str], dict[tuple[str, str], set[str]]
]:
    rows: list[rp.AggregateRow] = []
    labels: dict[str, str] = {}
    datasets: dict[tuple[str, str], set[str]] = {}

    jobs = repo.job_aggregates(conn, account_id, period.start, period.end, with_model=group_by == "model",
                               exclude=period.excluded)
    bodies = repo.job_profiles(conn, sorted({a.last_seq for a in jobs}))
    parsed: dict[str, tuple[str, rp.EmissionFactorRef | None, dict[str, str]]] = {}
    for a in jobs:
        body = bodies.get(a.last_seq)
        if body is None:  # pragma: no cover - read in the same snapshot
            location, factor, versions = a.geo_iso, None, dict[str, str]()
        else:
            if body not in parsed:
                parsed[body] = _job_profile(body)
            location, factor, versions = parsed[body]
        for name, v in versions.items():
            datasets.setdefault((name, v), set()).add("compute-job receipts")
        own = rp.is_own_hardware(a.provider, a.own_hardware)
        if group_by == "month":
            group = a.month
        elif group_by == "location":
            group = location
            labels.setdefault(group, _location_label(location))
        elif group_by == "provider":
            group = a.provider.strip().lower() if a.provider else "(provider not given)"
        elif group_by == "model":
            group = f"compute job: {a.model}" if a.model else "compute job: hardware not given"
        else:
            group = NO_KEY_GROUP
        rows.append(rp.AggregateRow(rp.KIND_JOB, a.month, group, own, factor, JOB_METHODOLOGY, a.records,
                                    a.energy_kwh, a.co2_g))

    infs = repo.inference_aggregates(conn, account_id, period.start, period.end, group_by)
    details = repo.inference_details(conn, sorted({a.last_seq for a in infs}))
    for b in infs:
        fallback = f"{b.final_provider}:{b.final_region}"
        d = details.get(b.last_seq)
        if d is None:  # pragma: no cover - the row was read in the same snapshot
            location, factor, version, meth = fallback, None, "ai-inference (version not recorded)", dict[str, str]()
        else:
            location, factor, version, meth = _inference_site(d, fallback)
        for name, v in meth.items():
            datasets.setdefault((name, v), set()).add("AI inference records")
        if group_by == "month":
            group = b.month
        elif group_by == "location":
            group = location
            labels.setdefault(group, _location_label(location))
        else:
            group = b.group or "?"
            if b.group_label:
                labels.setdefault(group, b.group_label)
        rows.append(rp.AggregateRow(rp.KIND_INFERENCE, b.month, group, False, factor, version, b.records,
                                    b.energy_wh / 1000.0, b.co2_g, b.water_ml, b.records))
    return rows, labels, datasets


def inference_record_sha256(
    record_id: str, log_date: str, provider: str, model_id: str, energy_wh: float, co2_grams: float,
    water_ml: float,
) -> str:
    """:func:`powermeter.methodology.reporting.inference_record_sha256`, three times faster: when
    every number is a non-integral double in [1e-4, 1e16), orjson writes it exactly as ECMAScript
    (RFC 8785) does, and the keys are passed in canonical order; otherwise the reference path."""
    e, c, w = energy_wh, co2_grams, water_ml
    if (1e-4 <= e < 1e16 and 1e-4 <= c < 1e16 and 1e-4 <= w < 1e16
            and not (e.is_integer() or c.is_integer() or w.is_integer())):
        try:
            return hashlib.sha256(orjson.dumps({
                "co2Grams": c, "energyWh": e, "id": record_id, "logDate": log_date, "modelId": model_id,
                "provider": provider, "waterMl": w,
            })).hexdigest()
        except TypeError:  # a lone surrogate: orjson refuses it, RFC 8785 escapes it
            pass
    return rp.inference_record_sha256(record_id, log_date, provider, model_id, energy_wh, co2_grams, water_ml)


def _coverage(
    conn: Connection, account_id: str, period: Period, total: int, progress: Progress | None
) -> list[str]:
    """Every covered record as a coverage entry (``kind:id:sha256``), jobs first."""
    entries: list[str] = []
    done = 0
    for batch in repo.iter_job_coverage(conn, account_id, period.start, period.end, exclude=period.excluded):
        entries.extend(["job:" + e for e in batch])
        done += len(batch)
        if progress is not None:
            progress(done, total)
    digest = inference_record_sha256
    for rows in repo.iter_inference_coverage(conn, account_id, period.start, period.end):
        if rows and rows[0][1].endswith("Z"):  # PostgreSQL: formatted by the server
            stamps = [r[1] for r in rows]
        else:  # SQLite text "YYYY-MM-DD HH:MM:SS.ffffff" (UTC)
            stamps = [f"{r[1][:10]}T{r[1][11:19]}Z" for r in rows]
        entries.extend([
            f"inference:{r[0]}:{digest(r[0], stamp, r[2], r[3], r[4], r[5], r[6])}"
            for r, stamp in zip(rows, stamps, strict=True)
        ])
        done += len(rows)
        if progress is not None:
            progress(done, total)
    return entries


def _sqlite_reader(db: Database) -> Engine | None:
    """A read-only engine on the same SQLite file, outside the app engine's ``BEGIN IMMEDIATE``
    hook (a second writer-style transaction would wait for the request's own lock). ``None`` for an
    in-memory database."""
    path = db.engine.url.database
    if not path or path == ":memory:":
        return None
    engine = _READERS.get(path)
    if engine is None:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        engine = sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30),
            poolclass=NullPool,
        )
        _READERS[path] = engine
    return engine


_READERS: dict[str, Engine] = {}


def _aside(db: Database, conn: Connection, fn: Callable[[Connection], _T]) -> Callable[[], _T] | None:
    """Prepare ``fn`` to run on a second connection that sees exactly what ``conn`` sees.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction importing ``conn``'s snapshot
    (``pg_export_snapshot``). SQLite: a read-only connection; the caller's ``BEGIN IMMEDIATE``
    transaction keeps every writer out until it ends, so both connections read the same rows.
    Returns ``None`` when that is not possible (the caller then runs ``fn`` on ``conn``)."""
    if conn.dialect.name == "postgresql":
        snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())

        def run_pg() -> _T:
            with db.engine.connect() as raw:
                side = raw.execution_options(isolation_level="REPEATABLE READ")
                with side.begin():
                    side.exec_driver_sql("SET TRANSACTION READ ONLY")
                    side.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    return fn(side)

        return run_pg
    reader = _sqlite_reader(db) if conn.dialect.name == "sqlite" else None
    if reader is None:
        return None

    def run_sqlite() -> _T:
        with reader.connect() as side:
            return fn(side)

    return run_sqlite


def build_document(
    conn: Connection,
    signer: Signer,
    *,
    account_id: str,
    email: str,
    period: Period,
    group_by: str,
    view: str,
    now: datetime,
    db: Database | None = None,
    with_coverage: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report document (``view`` ``report`` or ``esrs``), signed when ``with_coverage``.

    With ``db`` (and no progress bar to feed), the SQL aggregation runs in a worker thread on a
    second connection of the same snapshot while this thread lists and hashes the covered records:
    the database computes while Python hashes. Without coverage (CSV, which carries no signature)
    the records are not listed at all."""
    if group_by not in GROUP_BY:
        raise ValidationFailed([{"field": "groupBy", "message": f"must be one of {', '.join(GROUP_BY)}"}])
    tampered = integrity.check_period(conn, signer, account_id, period.start, period.end)
    period = integrity.exclude_from(period, tampered)

    def aggregate(c: Connection) -> tuple[list[rp.AggregateRow], dict[str, str], dict[tuple[str, str], set[str]]]:
        return _aggregate(c, account_id, period, group_by)

    side = _aside(db, conn, aggregate) if db is not None and progress is None and with_coverage else None
    entries: list[str] | None = None
    if side is not None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-aggregate") as pool:
            future = pool.submit(side)
            entries = _coverage(conn, account_id, period, -1, None)
            rows, labels, datasets = future.result()
    else:
        rows, labels, datasets = aggregate(conn)
    fig = rp.build_figures(rows, group_by, labels)
    total = int(fig.totals["records"])
    if with_coverage and entries is None:
        if progress is not None:
            progress(0, total)
        entries = _coverage(conn, account_id, period, total, progress)
    root: str | None = None
    tree_size = total
    if entries is not None:
        if len(entries) != total:  # pragma: no cover - both read the same snapshot
            raise RuntimeError(f"coverage lists {len(entries)} records but the totals count {total}")
        root_bytes, tree_size = rp.coverage_root(entries)
        root = root_bytes.hex()
    esrs = rp.esrs_e1_view(fig)
    report_type = rp.ESRS_REPORT_TYPE if view == "esrs" else rp.REPORT_TYPE
    doc: dict[str, Any] = {
        "type": report_type,
        "report_id": "rpt_" + secrets.token_hex(12),
        "generated_at": utc_iso(now),
        "account": {"id": account_id, "email": email},
        "period": {"start": utc_iso(period.start), "end": utc_iso(period.end), "end_exclusive": True,
                   "timezone": "UTC"},
        "group_by": group_by,
        "units": {"energy": "kWh", "emissions": "kg CO2e (location-based)", "water": "L"},
        "methodology": {
            "report_version": rp.REPORT_METHODOLOGY_VERSION,
            "record_methodology_versions": fig.methodology_versions,
            "summary": SUMMARY,
            "standards": [rp.GHG_CORPORATE, rp.GHG_SCOPE2, rp.GHG_SCOPE3, rp.ESRS_E1],
        },
        "totals": fig.totals,
        "by_ghg_category": fig.by_ghg_category,
        "lines": fig.lines,
        "series": fig.series,
        "esrs_e1": esrs,
        "emission_factors": fig.emission_factors,
        "datasets": [
            {"name": name, "version": version, "used_by": sorted(users)}
            for (name, version), users in sorted(datasets.items())
        ],
        "data_limits": list(REPORT_LIMITS),
        "coverage": {
            "leaf_format": rp.LEAF_FORMAT,
            "hashing": "RFC 6962 Merkle tree, SHA-256: leaf = H(0x00 || UTF-8 entry), node = H(0x01 || left || right)",
            "record_hashes": {
                "job": "the receipt's Merkle leaf hash (SHA-256 of 0x00 || its RFC 8785 bytes), "
                "as in GET /v1/receipts/{id}",
                "inference": "SHA-256 of the RFC 8785 JSON of {co2Grams, energyWh, id, logDate, modelId, provider, "
                "waterMl} as GET /v1/inference/history shows the record",
            },
            "order": "compute-job receipts in insertion order, then inference records by (log date, insertion)",
            "merkle_root_sha256": root,
            "tree_size": tree_size,
            "entries": entries,
        },
    }
    if tampered:
        doc["excluded_receipts"] = integrity.excluded_listing(tampered)
        doc["data_limits"].append(integrity.EXCLUDED_NOTE.format(n=len(tampered)))
    if view == "esrs":
        for k in ("lines", "series", "group_by"):
            doc.pop(k)
    if root is None:  # an unsigned export (CSV): no coverage list, no signature
        doc["coverage"] = {"merkle_root_sha256": None, "tree_size": tree_size, "entries": None}
        return doc
    head = rp.report_head(
        report_id=doc["report_id"], report_type=report_type, generated_at=doc["generated_at"],
        merkle_root_hex=root, tree_size=tree_size, content_sha256=rp.content_digest(doc), key_id=signer.key_id,
    )
    doc["signature"] = {
        "algorithm": "Ed25519",
        "key_id": signer.key_id,
        "public_key_pem": signer.public_key_pem(),
        "signed_bytes": "RFC 8785 canonical JSON of 'head'",
        "head": head,
        "value": signer.sign_b64(rp.signed_bytes(head)),
    }
    return doc


def record_download(
    conn: Connection,
    doc: Mapping[str, Any],
    fmt: str,
    now: datetime,
    *,
    actor_key_id: str | None,
    actor_masked_key: str | None,
    via: str,
) -> None:
    """The DOWNLOAD audit entry of a report, in the caller's transaction."""
    audit.append(
        conn,
        account_id=doc["account"]["id"],
        action_type="DOWNLOAD",
        actor_key_id=actor_key_id,
        actor_masked_key=actor_masked_key,
        details={
            "object": "emissions_report",
            "report_id": doc["report_id"],
            "format": fmt,
            "group_by": doc.get("group_by", "month"),
            "period_start": doc["period"]["start"],
            "period_end": doc["period"]["end"],
            "records": doc["coverage"]["tree_size"],
            "merkle_root_sha256": doc["coverage"]["merkle_root_sha256"],
            "via": via,
        },
        now=now,
    )


def render_document(doc: Mapping[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """(body, media type, file name) of a report in ``fmt``."""
    period = doc["period"]
    name = (f"emissions-report-{render.iso_boundary(period['start'])}-{render.iso_boundary(period['end'])}"
            f".{EXTENSIONS[fmt]}").replace(":", "")
    if fmt == "csv":
        return render.render_csv(doc), MEDIA_TYPES[fmt], name
    if fmt == "html":
        return render.render_html(doc), MEDIA_TYPES[fmt], name
    return orjson.dumps(doc), MEDIA_TYPES[fmt], name


# --- verification --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checks: list[rp.Check]
    report_id: str | None
    records: int | None


def load_report_file(path: Path) -> Any:
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return render.extract_embedded(text)
    if stripped.startswith(("{", "[")):
        return orjson.loads(stripped)
    raise ValueError(
        "not a JSON or HTML report; CSV exports carry no signature: verify the JSON, ESRS or HTML form"
    )


def verify_document(doc: Any, trusted_public_key_pem: str | None = None) -> Verification:
    """Check a report: coverage (Merkle root and count), content digest, head, then the signature
    with ``trusted_public_key_pem`` (else the key embedded in the file, which proves integrity but
    not origin)."""
    if isinstance(doc, Mapping) and set(doc) == {"status", "data"} and isinstance(doc["data"], Mapping):
        doc = doc["data"]
    if not isinstance(doc, Mapping):
        return Verification(False, [rp.Check("structure", False, "not a report document")], None, None)
    checks, head = rp.check_document(doc)
    rid = doc.get("report_id") if isinstance(doc.get("report_id"), str) else None
    cov = doc.get("coverage")
    n = len(cov["entries"]) if isinstance(cov, Mapping) and isinstance(cov.get("entries"), list) else None
    if head is None:
        return Verification(False, checks, rid, n)
    sig = doc["signature"]
    pem = trusted_public_key_pem or sig.get("public_key_pem")
    if not isinstance(pem, str):
        checks.append(rp.Check("signature", False, "no public key"))
        return Verification(False, checks, rid, n)
    try:
        key_id = _key_id_of(pem)
        signature = base64.b64decode(str(sig.get("value", "")), validate=True)
        good = key_id == head.get("key_id") and verify_signature(pem, rp.signed_bytes(head), signature)
        origin = ("the trusted key" if trusted_public_key_pem
                  else "the key embedded in the file (pin the server's key with --public-key)")
        detail = f"Ed25519 signature by {head.get('key_id')} verifies with {origin}" if good else (
            f"signature does not verify with key {key_id} (head names {head.get('key_id')})")
    except (ValueError, TypeError, binascii.Error) as exc:
        good, detail = False, f"unusable signature or key: {exc}"
    checks.append(rp.Check("signature", good, detail))
    return Verification(all(c.ok for c in checks), checks, rid, n)


def _key_id_of(pem: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
