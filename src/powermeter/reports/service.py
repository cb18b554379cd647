"""Emissions reports (GHG Protocol / ESRS E1) from compute-job receipts and AI inference records.

One unit of work: collect the period's records against the signed tree heads anchored in the audit
chain (``reports.ledger``), turn them into entries booked by occurrence time (``reports.compose``), sum
the entries into report lines (``methodology.reporting``), list every covered record with its hash,
build the RFC 6962 Merkle root over that list, sign the report head with the server's Ed25519 key, and
record a DOWNLOAD entry in the account's audit log in the caller's transaction.

Consistency: the totals and the coverage list must describe the same rows. On SQLite the caller's
``BEGIN IMMEDIATE`` transaction already keeps every writer out until it commits; on PostgreSQL the
reads run in their own REPEATABLE READ, READ ONLY transaction (one snapshot for every statement).
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import hashlib
import math
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson

from powermeter.audit import service as audit
from powermeter.data.energy_mix import SOURCE as ENERGY_MIX_SOURCE
from powermeter.data.energy_mix import load_energy_mixes
from powermeter.data.locations import load_locations
from powermeter.infra.clock import utc_iso
from powermeter.infra.db import Database
from powermeter.infra.errors import ValidationFailed
from powermeter.infra.security import Signer, verify_signature
from powermeter.methodology import reporting as rp
from powermeter.methodology.compute_job import METHOD_ID as JOB_METHOD_ID
from powermeter.methodology.compute_job import METHODOLOGY_VERSION as JOB_METHODOLOGY_VERSION
from powermeter.methodology.merkle import tree_head_bytes
from powermeter.reports import boundary, compose, ledger, render, restate
from powermeter.reports import repository as repo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

FORMATS = ("json", "csv", "html", "esrs")
GROUP_BY = rp.GROUP_BY
MAX_SPAN_DAYS = 3660  # ten years
JOB_METHODOLOGY = f"{JOB_METHODOLOGY_VERSION} ({JOB_METHOD_ID})"
NO_KEY_GROUP = compose.NO_KEY_GROUP
__all__ = ["NO_KEY_GROUP", "build_document", "verify_document"]

Progress = Callable[[int, int], None]

MEDIA_TYPES = {
    "json": "application/json",
    "esrs": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "html": "text/html; charset=utf-8",
}
EXTENSIONS = {"json": "json", "esrs": "esrs.json", "csv": "csv", "html": "html"}

REPORT_LIMITS = (
    "Figures are the energy and emissions stored on each covered record when it was made (estimates from "
    "reference data unless a record says it was measured); nothing is recomputed.",
    "Records are booked at their occurrence time: a job's started_at (else received time minus duration), an "
    "AI request's startTimeMs (else received time). Records that arrived after their year was closed are "
    "listed as late arrivals, not added.",
    "Scope 2 market-based figures use the site's instruments as entered by the account for their covered "
    "share, else the AIB residual mix of the country (direct CO2 only, transcribed from a secondary source: "
    "see each market factor's 'verification'), else the location-based grid factor (labelled grid_average).",
    "Every line shows CO2e from electricity use (co2e_usage) and from hardware manufacture (co2e_embodied) "
    "apart: AI inference records include an embodied share (EcoLogits); compute-job receipts carry none "
    "(0, not estimated).",
    "Compute-job receipts carry no uncertainty range: their min and max equal the estimate. AI inference "
    "ranges are the EcoLogits low/high runs.",
    "Location factors are on the basis their source gives (emission_factors[].basis): Our World in Data / "
    "Ember and Electricity Maps figures are lifecycle, EPA eGRID and AIB figures combustion. Scope 2 "
    "location-based is the generation (combustion) part (lines[].co2e_usage_generation_kg): where a lifecycle "
    "factor has a combustion counterpart in the data (combustion_factors; today the United States, eGRID "
    "vs OWID) the remainder is Scope 3 Category 3 (co2e_usage_upstream_kg); where it has none, the figure "
    "stays lifecycle and the line says so (location_factor_basis, basis_flags). Recorded factors are the "
    "ones of the dataset version in force at ingest; the gap to the activity year is flagged "
    "(location_factor_max_vintage_gap_years).",
    "Market-based Scope 2 in the US: no Green-e residual mix is shipped (the figures could not be sourced "
    "offline; data/residual_mixes/unavailable.csv says why), so US sites without an entered instrument use "
    "the eGRID grid average (combustion) where the data has one, labelled 'no_residual_mix'.",
    "Lines are split by the set of dataset versions their records were made with (lines[].dataset_versions, "
    "dataset_version_sets): records made under different reference data are never summed into one line.",
    "Water is estimated for AI inference records only; compute-job receipts carry no water figure "
    "(shown as n/a, not zero).",
    f"Compute-job receipts do not record the API key that created them; grouped by key, they appear "
    f"under '{compose.NO_KEY_GROUP}'.",
)

SUMMARY = (
    "Energy (kWh), emissions (kg CO2e; Scope 2 location- and market-based) and water (L) summed from the "
    "account's compute-job receipts (Green Algorithms formula) and AI inference records (EcoLogits "
    "methodology) that occurred within the period. Each record is booked in the GHG Protocol category the "
    "customer reports it under: jobs on owned, leased or co-located hardware as Scope 2, purchased cloud "
    "compute and AI services as Scope 3 Category 1, jobs with neither ownership nor provider as unclassified."
)

ARITHMETIC = (
    "entries[].co2e_g = energy_kwh × the listed factor's value (compute jobs, exactly; AI inference: "
    "co2e_usage_g = energy_kwh × factor to 1e-6 g, co2e_usage_g + co2e_embodied_g = co2e_g); "
    "entries[].market.co2e_g = energy_kwh × the market factor's value; entries[].upstream.generation_co2e_g = "
    "energy_kwh × the combustion factor's value and upstream_co2e_g = co2e_usage_g − generation_co2e_g (lines' "
    "co2e_usage_generation_kg sums the generation part, else the usage; co2e_usage_upstream_kg the upstream "
    "part); each line = the sum of the entries "
    "whose 'line' is its index; totals = the sum of the lines. `powermeter reports verify` re-performs all of it."
)

COMPLETENESS = (
    "Every ingest request appends its signed tree head to the account's audit chain (TREE_SIGNED). The "
    "report lists every anchored tree whose occurrence range meets the period with its head and leaf "
    "hashes; every leaf is accounted for by exactly one record (entries, late arrivals, other leaves) whose "
    "record_sha256 is rebuilt from the stored rows. A deleted row has no record hash, an edited row a "
    "different one, an added row no tree: each is named under problems and fails verification."
)


# --- period --------------------------------------------------------------------------------------------


EXCLUDED_NOTE = (
    "{n} record(s) failed their integrity check (the stored row no longer matches what was signed): they "
    "are excluded from every figure, listed in excluded_receipts and under completeness.problems, and the "
    "report does not verify until they are restored."
)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime  # exclusive


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


snapshot = repo.snapshot  # a read snapshot of the caller's database (see the module docstring)


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
    if (
        loc is not None
        and loc.year == year
        and loc.intensity_g_per_kwh == value
        and (source is None or source == loc.source)
    ):
        source = f"{loc.code} ({loc.name}), {loc.year}: {loc.source}"  # the compute-job receipts' wording
    elif source is not None:
        source = f"{location}, {year}: {source}"
    else:
        source = f"{location}, {year}: locations dataset {meth.get('locations', '(version not recorded)')}"
    factor = rp.EmissionFactorRef(location, value, source, meth.get("locations"))
    version = meth.pop("methodology", "ai-inference (version not recorded)")
    return location, factor, version, meth


_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a report is built: the build allocates a few
    objects per record and keeps them all alive, so every collection would walk them again for nothing
    (about a fifth of the build time). Nothing of a build is cyclic garbage; collection resumes after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _with_collector_paused(f: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(f)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _collector_paused():
            return f(*args, **kwargs)

    return run


@_with_collector_paused
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
    recompute: str | None = None,
    report_id: str | None = None,
) -> dict[str, Any]:
    """The report document (``view`` ``report`` or ``esrs``), signed when ``with_coverage``; with
    ``recompute="latest"`` a ``restatement`` section under the current datasets.

    ``report_id`` names the report (default: a random ``rpt_`` id); the dashboard passes one derived
    from the query so the CSV and HTML of the same query carry the same id.

    The records come from :func:`powermeter.reports.ledger.collect`: every leaf of every tree head
    anchored in the audit chain whose occurrence range meets the period, each rebuilt from its rows
    and checked against its signed leaf. Lines are summed from the entries in Python (exactly the
    figures the file lists, so a reader can re-perform them). ``db`` is accepted for compatibility."""
    del db
    if group_by not in GROUP_BY:
        raise ValidationFailed([{"field": "groupBy", "message": f"must be one of {', '.join(GROUP_BY)}"}])
    led = ledger.collect(conn, account_id, period.start, period.end)
    chain = audit.verify_account(conn, account_id, [audit.PublicKey.of(signer)])
    if not chain.ok:  # a removed or edited anchor would hide its records: the chain must hold
        brk = chain.first_break
        led.problems.append(
            {
                "record": f"audit chain of {account_id}",
                "problem": ledger.ALTERED,
                "detail": f"the audit chain holding the anchors breaks: {brk.as_json() if brk else '?'}",
            }
        )
    bnd = boundary.load(conn, account_id)
    comp = compose.compose(led.records, period.start, period.end, group_by, bnd, _inference_site, JOB_METHODOLOGY)
    fig = rp.build_figures(comp.rows, group_by, comp.labels)
    line_of = {
        (ln["group"], ln["ghg"]["code"], tuple(sorted(ln["dataset_versions"].items()))): i
        for i, ln in enumerate(fig.lines)
    }
    combustion_id = {
        (c["location"], c["value"], c["year"], c["source"], c["dataset_version"], c["paired_lifecycle_value"]): c["id"]
        for c in fig.combustion_factors
    }
    factor_id = {(f["location"], f["value"], f["source"], f["dataset_version"]): f["id"] for f in fig.emission_factors}
    market_id = {
        (m["hierarchy_level"], m["label"], m["value"], m["source"], m["dataset_version"]): m["id"]
        for m in fig.market_factors
    }
    for e, key in zip(comp.entries, comp.keys, strict=True):
        e["line"] = line_of[key]
    # id(ref) → (ref, its id in the report): the refs are shared by the entries of one profile, so each is
    # looked up once (kept here so that its id() cannot be reused by another object)
    memo: dict[int, tuple[object, str | None]] = {}
    for e in [*comp.entries, *comp.late]:
        f = e.pop("_factor", None)
        m = e.pop("_market", None)
        if f is None:
            e["factor_id"] = None
        else:
            hit = memo.get(id(f))
            if hit is None:
                hit = memo[id(f)] = (f, factor_id.get(f.key))
            e["factor_id"] = hit[1]
        if f is not None and e["factor_id"] is None:  # a late arrival's factor: listed inline
            e["factor_inline"] = {"location": f.location, "value": f.intensity_g_per_kwh, "source": f.source}
        up = e.get("upstream")
        if up is not None:
            c = up.pop("_comb")
            hit = memo.get(id(c))
            if hit is None:
                hit = memo[id(c)] = (c, combustion_id.get(c.key))
            up["combustion_factor_id"] = hit[1]
            if up["combustion_factor_id"] is None:  # a late arrival's factor: listed inline
                up["combustion_factor_inline"] = {
                    "location": c.location,
                    "value": c.intensity_g_per_kwh,
                    "source": c.source,
                }
        if m is not None and "market" in e:
            hit = memo.get(id(m))
            if hit is None:
                hit = memo[id(m)] = (m, market_id.get(m.key))
            e["market"]["factor_id"] = hit[1]
            if e["market"]["factor_id"] is None:
                e["market"]["factor_inline"] = {"label": m.label, "value": m.intensity_g_per_kwh, "source": m.source}
    excluded = [
        {
            "kind": r.kind,
            "receipt_id" if r.kind == "job" else "record_id": r.id,
            "tree_id": r.tree_id,
            "reason": r.detail,
            "error_code": "RECEIPT_INTEGRITY_FAILED",
        }
        for r in led.records
        if r.status == ledger.ALTERED and r.in_period(period.start, period.end)
    ]
    total = int(fig.totals["records"])
    if progress is not None:
        progress(total, total)
    placed = {(e["kind"], e["id"]) for e in [*comp.entries, *comp.late]}
    other = [
        {"kind": r.kind, "id": r.id, "tree_id": r.tree_id, "leaf_index": r.leaf_index,
         "record_sha256": r.record_sha256, "status": r.status,
         "occurred_at": None if r.occurred_at is None else utc_iso(r.occurred_at)}
        for r in led.records
        if (r.kind, r.id) not in placed
    ]  # fmt: skip
    entries = comp.coverage if with_coverage else None
    root: str | None = None
    tree_size = total
    if entries is not None:
        root_bytes, tree_size = rp.coverage_root(entries)
        root = root_bytes.hex()
    esrs = rp.esrs_e1_view(fig, _energy_mix_split(comp.entries))
    report_type = rp.ESRS_REPORT_TYPE if view == "esrs" else rp.REPORT_TYPE
    late_s2 = [e for e in comp.late if e.get("category") == rp.SCOPE2.code]
    doc: dict[str, Any] = {
        "type": report_type,
        "report_id": report_id or "rpt_" + secrets.token_hex(12),
        "generated_at": utc_iso(now),
        "account": {"id": account_id, "email": email},
        "period": {
            "start": utc_iso(period.start),
            "end": utc_iso(period.end),
            "end_exclusive": True,
            "timezone": "UTC",
        },
        "boundary": {
            "consolidation_approach": bnd.consolidation_approach,
            "consolidation_approach_source": "set by the account"
            if bnd.approach_set
            else "default (not set by the account: PUT /v1/reports/settings)",
            "entity": bnd.entity,
            "sites": sorted({str(e["site"]) for e in comp.entries if e.get("site")}),
            "site_instruments": [i.as_dict() for _, i in sorted(bnd.sites.items())],
            "classification": "ownership owned/leased/colocation → Scope 2, cloud → Scope 3 Category 1; "
            "without ownership: an on-premises provider word → Scope 2, any other provider → Scope 3 "
            "Category 1, no provider → unclassified (in no scope)",
            "closed_periods": boundary.closes_json(bnd),
        },
        "group_by": group_by,
        "units": {
            "energy": "kWh",
            "emissions": "kg CO2e",
            "water": "L",
            "entries": "g CO2e (energy in kWh, water in mL)",
        },
        "methodology": {
            "report_version": rp.REPORT_METHODOLOGY_VERSION,
            "record_methodology_versions": fig.methodology_versions,
            "summary": SUMMARY,
            "standards": [rp.GHG_CORPORATE, rp.GHG_SCOPE2, rp.GHG_SCOPE3, rp.ESRS_E1],
            "arithmetic": ARITHMETIC,
            "booked_by": "occurrence time (job started_at, else received time minus duration; AI request "
            "startTimeMs, else received time)",
        },
        "totals": fig.totals,
        "by_ghg_category": fig.by_ghg_category,
        "lines": fig.lines,
        "series": fig.series,
        "esrs_e1": esrs,
        "emission_factors": fig.emission_factors,
        "market_factors": fig.market_factors,
        "combustion_factors": fig.combustion_factors,
        "dataset_version_sets": fig.dataset_version_sets,
        "assumptions": list(comp.assumptions.values()),
        "datasets": [
            {"name": name, "version": version, "used_by": sorted(users)}
            for (name, version), users in sorted(comp.datasets.items())
        ],
        "data_limits": list(REPORT_LIMITS) + ([EXCLUDED_NOTE.format(n=len(excluded))] if excluded else []),
        "entries": comp.entries,
        "excluded_receipts": excluded,
        "late_arrivals": {
            "note": "records booked in a closed year that arrived after it was closed: listed, not added "
            "to the lines or totals",
            "records": len(comp.late),
            "co2e_kg": math.fsum(e["co2e_g"] for e in comp.late) / 1000.0,
            "scope2_records": len(late_s2),
        },
        "completeness": {
            "method": COMPLETENESS,
            "trees": [
                {
                    "kind": t.kind,
                    "tree_id": t.tree_id,
                    "audit_seq": t.audit_seq,
                    "audit_entry_sha256": t.audit_entry_sha256,
                    "head": t.head,
                    "leaf_hashes": t.leaf_hashes,
                }
                for t in led.trees
            ],
            "late_arrivals": comp.late,
            "other_leaves": other,
            "problems": led.problems,
            "audit_chain": {
                "ok": chain.ok,
                "head_seq": chain.head_seq,
                "head_hash": chain.head_hash,
                "verified_through_seq": chain.verified_through_seq,
                "checkpointed_through_seq": chain.anchored_through_seq,
            },
        },
        "coverage": {
            "leaf_format": rp.LEAF_FORMAT,
            "hashing": "RFC 6962 Merkle tree, SHA-256: leaf = H(0x00 || UTF-8 entry), node = H(0x01 || left || right)",
            "record_hashes": {
                "job": "the receipt's Merkle leaf hash (SHA-256 of 0x00 || its RFC 8785 bytes), "
                "as in GET /v1/receipts/{id}",
                "inference": "SHA-256 of the RFC 8785 JSON of {co2Grams, energyWh, id, logDate, modelId, provider, "
                "waterMl} as GET /v1/inference/history shows the record",
            },
            "order": "compute-job receipts by tree (audit chain order) and leaf, then inference records by "
            "occurrence time",
            "merkle_root_sha256": root,
            "tree_size": tree_size,
            "entries": entries,
        },
    }
    if recompute == "latest":
        doc["restatement"] = restate.restate(comp.entries, fig.lines, comp.inputs)
    elif recompute is not None:
        raise ValidationFailed([{"field": "recompute", "message": "must be 'latest' (or omitted)"}])
    if view == "esrs":
        for k in ("lines", "series", "group_by", "entries"):
            doc.pop(k)
        doc["completeness"] = {
            "method": COMPLETENESS,
            "problems": led.problems,
            "note": "the ESRS view carries no entries; verify the full report",
        }
    if root is None:  # an unsigned preview (dashboard): no coverage list, no signature
        doc["coverage"] = {"merkle_root_sha256": None, "tree_size": tree_size, "entries": None}
        return doc
    head = rp.report_head(
        report_id=doc["report_id"],
        report_type=report_type,
        generated_at=doc["generated_at"],
        merkle_root_hex=root,
        tree_size=tree_size,
        content_sha256=rp.content_digest(doc),
        key_id=signer.key_id,
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


def _energy_mix_split(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """ESRS E1-5: the Scope 2 electricity (MWh) split into fossil / nuclear / renewable / other / unknown
    with the generation shares of each record's country (location-based)."""
    mixes = load_energy_mixes()
    locations = load_locations()
    parts: dict[str, list[float]] = {k: [] for k in ("fossil", "nuclear", "renewable", "other", "unknown")}
    years: set[int] = set()
    for e in entries:
        if e.get("category") != rp.SCOPE2.code:
            continue
        mwh = float(e["energy_kwh"]) / 1000.0
        loc = locations.resolve(str(e.get("location") or ""))
        shares = mixes.get(loc.country if loc is not None else None)
        if shares is None:
            parts["unknown"].append(mwh)
            continue
        years.add(shares.year)
        parts["fossil"].append(mwh * shares.fossil)
        parts["nuclear"].append(mwh * shares.nuclear)
        parts["renewable"].append(mwh * shares.renewable)
        parts["other"].append(mwh * shares.other)
    total = math.fsum(math.fsum(v) for v in parts.values())
    out: dict[str, Any] = {f"{k}_mwh": math.fsum(v) for k, v in parts.items()}
    out.update({f"{k}_share": (math.fsum(v) / total if total else None) for k, v in parts.items()})
    out.update({"share_years": sorted(years), "source": ENERGY_MIX_SOURCE, "dataset_version": mixes.version})
    return out


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
    name = (
        f"emissions-report-{render.iso_boundary(period['start'])}-{render.iso_boundary(period['end'])}"
        f".{EXTENSIONS[fmt]}"
    ).replace(":", "")
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
    raise ValueError("not a JSON or HTML report; CSV exports carry no signature: verify the JSON, ESRS or HTML form")


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
        origin = (
            "the trusted key"
            if trusted_public_key_pem
            else "the key embedded in the file (pin the server's key with --public-key)"
        )
        detail = (
            f"Ed25519 signature by {head.get('key_id')} verifies with {origin}"
            if good
            else (f"signature does not verify with key {key_id} (head names {head.get('key_id')})")
        )
    except (ValueError, TypeError, binascii.Error) as exc:
        good, detail = False, f"unusable signature or key: {exc}"
    checks.append(rp.Check("signature", good, detail))
    if doc.get("type") == rp.REPORT_TYPE:
        checks += rp.check_arithmetic(doc)
        checks += rp.check_completeness(doc)
        checks.append(_tree_signatures(doc, pem))
    return Verification(all(c.ok for c in checks), checks, rid, n)


def _tree_signatures(doc: Mapping[str, Any], pem: str) -> rp.Check:
    """Each anchored tree head listed in the report verifies with the server's key."""
    comp = doc.get("completeness")
    trees = comp.get("trees") if isinstance(comp, Mapping) else None
    if not isinstance(trees, list):
        return rp.Check("tree head signatures", False, "no trees listed")
    try:
        key_id = _key_id_of(pem)
    except (ValueError, TypeError) as exc:
        return rp.Check("tree head signatures", False, f"unusable key: {exc}")
    bad: list[str] = []
    for t in trees:
        head = t.get("head") if isinstance(t, Mapping) else None
        try:
            if not isinstance(head, Mapping) or head.get("key_id") != key_id:
                raise ValueError("no head, or signed with another key")
            message = tree_head_bytes(
                root=bytes.fromhex(str(head["root_sha256"])),
                tree_size=int(head["tree_size"]),
                issued_at=str(head["issued_at"]),
                key_id=str(head["key_id"]),
            )
            ok = verify_signature(pem, message, base64.b64decode(str(head["signature"]), validate=True))
        except (AssertionError, KeyError, TypeError, ValueError, binascii.Error):
            ok = False
        if not ok:
            bad.append(str(t.get("tree_id")) if isinstance(t, Mapping) else "?")
    detail = (
        f"tree heads that do not verify with key {key_id}: {', '.join(bad[:5])}"
        if bad
        else f"{len(trees)} tree heads signed by {key_id}"
    )
    return rp.Check("tree head signatures", not bad, detail)


def _key_id_of(pem: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


# --- SCI (ISO/IEC 21031) --------------------------------------------------------------------------------

SCI_STANDARD = "Software Carbon Intensity (SCI) specification, ISO/IEC 21031:2024"
MAX_FUNCTIONAL_UNITS = 1e15


def sci(
    conn: Connection, *, account_id: str, period: Period, application: str, functional_unit: str, units: float,
) -> dict[str, Any]:  # fmt: skip
    """SCI = (E × I + M) per R for the records tagged ``application`` that occurred in the period.

    E × I is each record's operational CO2e (``co2e_usage_g``: energy × grid factor), M its embodied
    share (AI inference: EcoLogits' allocation; compute jobs: not estimated, stated), R the number of
    functional units the client gives for the same period."""
    if not (0 < units <= MAX_FUNCTIONAL_UNITS) or units != units:
        message = f"must be a number of functional units > 0 and ≤ {MAX_FUNCTIONAL_UNITS:g}"
        raise ValidationFailed([{"field": "functionalUnits", "message": message}])
    led = ledger.collect(conn, account_id, period.start, period.end)
    comp = compose.compose(
        led.records,
        period.start,
        period.end,
        "application",
        boundary.load(conn, account_id),
        _inference_site,
        JOB_METHODOLOGY,
    )
    mine = [e for e in comp.entries if e.get("application") == application]
    operational = math.fsum(float(e["co2e_usage_g"]) for e in mine)
    job_m: list[float] = []
    for e in mine:
        if e["kind"] == "job":
            inp = comp.inputs.get(str(e["id"])) or {}
            job_m.append(
                rp.sci_job_embodied_g(
                    float(inp.get("duration_minutes") or 0.0),
                    float(inp.get("cpu_cores") or 0.0),
                    float(inp.get("gpu_cores") or 0.0),
                )
            )
    embodied = math.fsum([*(float(e["co2e_embodied_g"]) for e in mine if e["kind"] != "job"), *job_m])
    energy = math.fsum(float(e["energy_kwh"]) for e in mine)
    jobs = sum(1 for e in mine if e["kind"] == "job")
    return {
        "standard": SCI_STANDARD,
        "application": application,
        "period": {"start": utc_iso(period.start), "end": utc_iso(period.end), "end_exclusive": True},
        "functional_unit": functional_unit,
        "R": units,
        "E_kwh": energy,
        "E_times_I_gco2e": operational,
        "M_gco2e": embodied,
        "M_compute_jobs_gco2e": math.fsum(job_m),
        "M_compute_jobs_source": rp.SCI_EMBODIED_SOURCE,
        "sci_gco2e_per_unit": (operational + embodied) / units,
        "records": {"total": len(mine), "compute_jobs": jobs, "inference": len(mine) - jobs},
        "completeness_problems": len(led.problems),
        "limits": [
            "M (embodied): AI inference records carry EcoLogits' allocation; compute jobs get M = TE × (t / EL) × "
            "reserved share with Cloud Carbon Footprint's coefficients (M_compute_jobs_source): an m5-class "
            "server by vCPU, a p4d-class server by GPU. These SCI-only figures are not in the emissions report "
            "(jobs' co2e_embodied stays 0 there).",
            "I is the grid-average (location-based) intensity each record was made with; SCI excludes "
            "market-based instruments by definition.",
            "R is the count of functional units given by the client for the same period; it is not checked.",
        ],
    }
