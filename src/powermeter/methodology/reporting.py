"""Emissions reports: GHG Protocol categories, report lines and totals, the ESRS E1 view, and the
Merkle coverage that makes a report verifiable.

Pure: numbers in, numbers out. The database aggregates receipts and inference records into
:class:`AggregateRow` partial sums (one per month × group × GHG category × emission factor ×
methodology version); this module folds them into report lines, totals, a monthly series for the
charts and the ESRS E1 figures, and builds / checks the report's coverage tree.

GHG Protocol categories, as the *customer* books them (GHG Protocol Corporate Standard, Scope 2
Guidance 2015, Scope 3 Standard 2011; see docs/methodology.md "Compliance reports"):

* a compute job the account marks as run on its own hardware: **Scope 2**, purchased electricity,
  location-based (grid-average emission factor of the job's location);
* a compute job on purchased cloud capacity and every AI inference request: **Scope 3 Category 1**,
  purchased goods and services (the supplier's electricity is the supplier's Scope 2, upstream for
  the customer).

Coverage: each covered record is one leaf, the UTF-8 bytes of ``"<kind>:<record id>:<sha256 hex>"``
(``kind`` is ``job`` or ``inference``); the tree is RFC 6962 (``leaf = SHA-256(0x00 || data)``,
``node = SHA-256(0x01 || left || right)``). The signed report head binds the root, the number of
leaves and the SHA-256 of the canonical JSON (RFC 8785) of the rest of the report, so adding,
removing or editing a covered record, a line or a total breaks verification.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _escape
from typing import Any

from powermeter.methodology.merkle import canonical_json, json_number
from powermeter.methodology.units import G_PER_KG, ML_PER_L

__all__ = [
    "GROUP_BY",
    "KIND_INFERENCE",
    "KIND_JOB",
    "REPORT_METHODOLOGY_VERSION",
    "SCOPE2_LOCATION",
    "SCOPE3_CAT1",
    "AggregateRow",
    "EmissionFactorRef",
    "GhgCategory",
    "ReportFigures",
    "build_figures",
    "check_document",
    "content_digest",
    "coverage_entry",
    "coverage_root",
    "esrs_e1_view",
    "ghg_category",
    "inference_record_sha256",
    "is_own_hardware",
    "report_head",
    "signed_bytes",
]

REPORT_METHODOLOGY_VERSION = "reports/1"
REPORT_TYPE = "powermeter.emissions-report/1"
ESRS_REPORT_TYPE = "powermeter.esrs-e1-report/1"
HEAD_TYPE = "powermeter.report-head/1"
LEAF_FORMAT = "<kind>:<record id>:<sha256 hex of the record>"

GROUP_BY = ("month", "location", "provider", "model", "key")
KIND_JOB = "job"
KIND_INFERENCE = "inference"
KINDS = (KIND_JOB, KIND_INFERENCE)

KG_PER_TONNE = 1000.0
KWH_PER_MWH = 1000.0

GHG_CORPORATE = "GHG Protocol Corporate Accounting and Reporting Standard (WRI/WBCSD, revised 2004)"
GHG_SCOPE2 = "GHG Protocol Scope 2 Guidance (WRI/WBCSD, 2015)"
GHG_SCOPE3 = "GHG Protocol Corporate Value Chain (Scope 3) Standard (WRI/WBCSD, 2011), Category 1"
ESRS_E1 = "ESRS E1 Climate change, Commission Delegated Regulation (EU) 2023/2772, Annex I"


@dataclass(frozen=True, slots=True)
class GhgCategory:
    """Where the customer books a record's emissions."""

    code: str
    scope: int
    category: int | None
    name: str
    method: str
    standard: str

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "scope": self.scope,
            "category": self.category,
            "name": self.name,
            "method": self.method,
            "standard": self.standard,
        }


SCOPE2_LOCATION = GhgCategory(
    code="scope2_location",
    scope=2,
    category=None,
    name="Scope 2: purchased electricity for compute jobs on the account's own hardware",
    method="location-based (grid-average emission factor of the job's location)",
    standard=GHG_SCOPE2,
)
SCOPE3_CAT1 = GhgCategory(
    code="scope3_cat1",
    scope=3,
    category=1,
    name="Scope 3 Category 1: purchased goods and services (cloud compute and AI inference services)",
    method="average-data (estimated supplier electricity × grid-average factor; supplier-specific: no)",
    standard=GHG_SCOPE3,
)
CATEGORIES = (SCOPE2_LOCATION, SCOPE3_CAT1)
_BY_CODE = {c.code: c for c in CATEGORIES}


#: ``provider`` values by which a compute job says it ran on the account's own hardware (the job
#: request has no dedicated flag yet; an ``own_hardware`` input, when receipts carry one, wins).
OWN_HARDWARE_PROVIDERS = frozenset(
    {"own", "own-hardware", "own_hardware", "on-prem", "on-premises", "onprem", "self-hosted", "selfhosted"}
)


def is_own_hardware(provider: str | None, own_hardware_flag: str | None = None) -> bool:
    """Did the account mark this compute job as run on its own hardware?

    ``own_hardware_flag`` is the job's ``own_hardware`` input as text (``"true"``/``"1"`` or
    ``"false"``/``"0"``) when the receipt records one; otherwise the ``provider`` decides.
    """
    if own_hardware_flag is not None:
        return own_hardware_flag.strip().lower() in ("1", "true")
    return provider is not None and provider.strip().lower() in OWN_HARDWARE_PROVIDERS


def ghg_category(kind: str, own_hardware: bool) -> GhgCategory:
    """GHG Protocol category of one record: Scope 2 for jobs on the account's own hardware,
    Scope 3 Category 1 for purchased cloud compute and for every AI inference request."""
    if kind == KIND_JOB and own_hardware:
        return SCOPE2_LOCATION
    if kind in KINDS:
        return SCOPE3_CAT1
    raise ValueError(f"unknown record kind {kind!r}")


# --- aggregation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmissionFactorRef:
    """A grid emission factor as the records stored it."""

    location: str
    intensity_g_per_kwh: float | None
    source: str | None
    dataset_version: str | None

    @property
    def key(self) -> tuple[str, float | None, str | None, str | None]:
        return (self.location, self.intensity_g_per_kwh, self.source, self.dataset_version)


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """One partial sum from the database."""

    kind: str  # job | inference
    month: str  # YYYY-MM (UTC)
    group: str
    own_hardware: bool
    factor: EmissionFactorRef | None
    methodology_version: str
    records: int
    energy_kwh: float
    co2e_g: float
    water_ml: float = 0.0
    water_records: int = 0


@dataclass(slots=True)
class _Acc:
    records: int = 0
    jobs: int = 0
    inferences: int = 0
    water_records: int = 0
    energy_kwh: list[float] = field(default_factory=list)
    co2e_g: list[float] = field(default_factory=list)
    water_ml: list[float] = field(default_factory=list)
    factor_ids: set[str] = field(default_factory=set)
    methodologies: set[str] = field(default_factory=set)

    def add(self, row: AggregateRow, factor_id: str | None) -> None:
        self.records += row.records
        if row.kind == KIND_JOB:
            self.jobs += row.records
        else:
            self.inferences += row.records
        self.water_records += row.water_records
        self.energy_kwh.append(row.energy_kwh)
        self.co2e_g.append(row.co2e_g)
        self.water_ml.append(row.water_ml)
        if factor_id is not None:
            self.factor_ids.add(factor_id)
        self.methodologies.add(row.methodology_version)

    def figures(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "compute_job_receipts": self.jobs,
            "inference_records": self.inferences,
            "energy_kwh": math.fsum(self.energy_kwh),
            "co2e_kg": math.fsum(self.co2e_g) / G_PER_KG,
            "water_l": math.fsum(self.water_ml) / ML_PER_L if self.water_records else None,
            "water_records": self.water_records,
        }


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Everything numeric in a report, JSON-ready (floats unrounded; units in the names)."""

    lines: list[dict[str, Any]]
    totals: dict[str, Any]
    by_ghg_category: list[dict[str, Any]]
    series: list[dict[str, Any]]
    emission_factors: list[dict[str, Any]]
    methodology_versions: list[str]


def _factor_sort_key(f: EmissionFactorRef) -> tuple[str, float, str, str]:
    return (f.location, f.intensity_g_per_kwh or 0.0, f.source or "", f.dataset_version or "")


def build_figures(
    rows: Iterable[AggregateRow],
    group_by: str,
    group_labels: Mapping[str, str] | None = None,
) -> ReportFigures:
    """Fold database partial sums into lines (group × GHG category), totals, per-category totals,
    a month × group series and the list of emission factors used."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
    rows = list(rows)
    labels = group_labels or {}
    factors = sorted({r.factor for r in rows if r.factor is not None}, key=_factor_sort_key)
    factor_ids = {f.key: f"EF{i + 1}" for i, f in enumerate(factors)}
    factor_records: dict[str, int] = {}

    lines: dict[tuple[str, str], _Acc] = {}
    categories: dict[str, _Acc] = {}
    series: dict[tuple[str, str], _Acc] = {}
    total = _Acc()
    for r in rows:
        cat = ghg_category(r.kind, r.own_hardware).code
        fid = factor_ids[r.factor.key] if r.factor is not None else None
        if fid is not None:
            factor_records[fid] = factor_records.get(fid, 0) + r.records
        for acc in (
            lines.setdefault((r.group, cat), _Acc()),
            categories.setdefault(cat, _Acc()),
            series.setdefault((r.month, r.group), _Acc()),
            total,
        ):
            acc.add(r, fid)

    def group_order(group: str, acc: _Acc) -> tuple[object, ...]:
        if group_by == "month":
            return (group,)
        return (-math.fsum(acc.co2e_g), group)

    group_totals: dict[str, _Acc] = {}
    for (group, _cat), acc in lines.items():
        g = group_totals.setdefault(group, _Acc())
        g.co2e_g.extend(acc.co2e_g)
    order = {g: i for i, g in enumerate(sorted(group_totals, key=lambda g: group_order(g, group_totals[g])))}
    cat_order = {c.code: i for i, c in enumerate(CATEGORIES)}

    out_lines = []
    for (group, cat), acc in sorted(lines.items(), key=lambda kv: (order[kv[0][0]], cat_order[kv[0][1]])):
        out_lines.append(
            {
                "group": group,
                "group_label": labels.get(group, group),
                "ghg": _BY_CODE[cat].as_dict(),
                **acc.figures(),
                "emission_factor_ids": sorted(acc.factor_ids, key=lambda s: int(s[2:])),
                "methodology_versions": sorted(acc.methodologies),
            }
        )
    out_categories = [
        {"ghg": _BY_CODE[code].as_dict(), **categories[code].figures()}
        for code in sorted(categories, key=cat_order.__getitem__)
    ]
    out_series = [
        {"month": month, "group": group, "group_label": labels.get(group, group), **acc.figures()}
        for (month, group), acc in sorted(series.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    ]
    out_factors = [
        {
            "id": factor_ids[f.key],
            "kind": "grid_carbon_intensity",
            "location": f.location,
            "value": f.intensity_g_per_kwh,
            "unit": "gCO2e/kWh",
            "source": f.source,
            "dataset_version": f.dataset_version,
            "records": factor_records.get(factor_ids[f.key], 0),
        }
        for f in factors
    ]
    return ReportFigures(
        lines=out_lines,
        totals=total.figures(),
        by_ghg_category=out_categories,
        series=out_series,
        emission_factors=out_factors,
        methodology_versions=sorted(total.methodologies),
    )


# --- ESRS E1 ------------------------------------------------------------------------------------

ESRS_LIMITS = (
    "Scope 1 is not covered: powermeter sees electricity use only, not fuels burnt by the undertaking.",
    "Scope 2 market-based emissions need the undertaking's contractual instruments (PPAs, guarantees of "
    "origin, supplier-specific emission factors); powermeter has none, so the market-based figures are "
    "not reported rather than set equal to the location-based ones.",
    "Scope 2 covers only compute jobs the account marked as run on its own hardware, estimated from "
    "allocated resources and reference power draws (not metered electricity).",
    "Scope 3 covers Category 1 (purchased cloud compute and AI inference) only, with average-data "
    "estimates (supplier-specific: no); other Scope 3 categories are outside this data.",
    "E1-5 energy: only the electricity of jobs on the account's own hardware is own-operations energy; the "
    "energy of purchased cloud and AI services is value-chain context. The fossil / nuclear / renewable "
    "split of E1-5 needs the supplier's energy mix, which the data do not hold.",
    "Water (E3-4) of purchased AI inference is the supplier's consumption, given as value-chain context; "
    "compute-job receipts carry no water estimate.",
    "Figures are estimates from reference data (methodology and dataset versions are listed); they are "
    "not metered values and have not been assured by a third party.",
    "The CSRD timetable and the ESRS datapoints were amended by the 2025 'Omnibus' simplification "
    "package; check the obligations that currently apply to the undertaking before filing.",
)


def _tonnes(co2e_kg: float) -> float:
    return co2e_kg / KG_PER_TONNE


def esrs_e1_view(figures: ReportFigures) -> dict[str, Any]:
    """The ESRS E1-5 / E1-6 figures the data support, with every gap stated (``None`` + a reason)."""
    cats = {c["ghg"]["code"]: c for c in figures.by_ghg_category}
    s2 = cats.get(SCOPE2_LOCATION.code)
    s3 = cats.get(SCOPE3_CAT1.code)
    s2_kwh = s2["energy_kwh"] if s2 else 0.0
    s2_t = _tonnes(s2["co2e_kg"]) if s2 else 0.0
    s3_kwh = s3["energy_kwh"] if s3 else 0.0
    s3_t = _tonnes(s3["co2e_kg"]) if s3 else 0.0
    s3_water = s3["water_l"] if s3 else None
    return {
        "standard": ESRS_E1,
        "units": {"energy": "MWh", "emissions": "tCO2e", "water": "m3"},
        "E1-5": {
            "title": "Energy consumption and mix",
            "total_energy_consumption_own_operations_mwh": s2_kwh / KWH_PER_MWH,
            "covers": "electricity of compute jobs marked as run on the account's own hardware "
            f"({s2['records'] if s2 else 0} receipts)",
            "fossil_nuclear_renewable_breakdown": None,
            "fossil_nuclear_renewable_breakdown_reason": "needs the supplier's energy mix (not in the data)",
            "value_chain_context": {
                "purchased_cloud_and_ai_energy_mwh": s3_kwh / KWH_PER_MWH,
                "note": "energy used by suppliers to serve the account (Scope 3 Category 1 activity); "
                "not own-operations energy",
            },
        },
        "E1-6": {
            "title": "Gross Scopes 1, 2, 3 and Total GHG emissions",
            "gross_scope_1_tco2e": None,
            "gross_scope_1_reason": "not covered: no fuel or process data",
            "gross_scope_2_location_based_tco2e": s2_t,
            "gross_scope_2_market_based_tco2e": None,
            "gross_scope_2_market_based_reason": "needs contractual instruments (PPAs, guarantees of origin, "
            "supplier-specific factors) that the data do not hold",
            "gross_scope_3_tco2e": s3_t,
            "scope_3_categories": [
                {
                    "category": 1,
                    "name": "Purchased goods and services",
                    "tco2e": s3_t,
                    "records": s3["records"] if s3 else 0,
                    "method": SCOPE3_CAT1.method,
                }
            ],
            "total_ghg_emissions_location_based_tco2e": s2_t + s3_t,
            "total_ghg_emissions_location_based_note": "Scope 2 location-based + Scope 3 Category 1; "
            "Scope 1 not included",
            "total_ghg_emissions_market_based_tco2e": None,
            "total_ghg_emissions_market_based_reason": "Scope 2 market-based is not available (see above)",
        },
        "E3-4_context": {
            "purchased_ai_inference_water_m3": None if s3_water is None else s3_water / ML_PER_L,
            "note": "water consumed by suppliers serving AI inference requests (value-chain context, not "
            "own-operations water consumption)",
        },
        "data_limits": list(ESRS_LIMITS),
    }


# --- coverage and signing -----------------------------------------------------------------------


def inference_record_sha256(
    record_id: str, log_date: str, provider: str, model_id: str, energy_wh: float, co2_grams: float, water_ml: float
) -> str:
    """SHA-256 (hex) of an inference record as the history API shows it: the canonical JSON (RFC 8785)
    of ``{"co2Grams", "energyWh", "id", "logDate", "modelId", "provider", "waterMl"}``, with
    ``logDate`` as ``YYYY-MM-DDTHH:MM:SSZ``. Built in canonical key order with the C string escaper
    (the same bytes as :func:`canonical_json`, about 1 µs instead of 10)."""
    text = (
        f'{{"co2Grams":{json_number(co2_grams)},"energyWh":{json_number(energy_wh)},"id":{_escape(record_id)},'
        f'"logDate":{_escape(log_date)},"modelId":{_escape(model_id)},"provider":{_escape(provider)},'
        f'"waterMl":{json_number(water_ml)}}}'
    )
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: RFC 8785 escapes it, the C escaper does not
        data = canonical_json({"co2Grams": co2_grams, "energyWh": energy_wh, "id": record_id, "logDate": log_date,
                               "modelId": model_id, "provider": provider, "waterMl": water_ml})
    return hashlib.sha256(data).hexdigest()


def coverage_entry(kind: str, record_id: str, sha256_hex: str) -> str:
    """One covered record as it appears in the report (and, UTF-8 encoded, as its Merkle leaf)."""
    return f"{kind}:{record_id}:{sha256_hex}"


def coverage_root(entries: Sequence[str]) -> tuple[bytes, int]:
    """RFC 6962 Merkle Tree Hash over a report's coverage entries, and the number of leaves.

    Computed level by level, carrying an odd last node up unchanged: for every tree size this is
    the RFC 6962 split at the largest power of two smaller than n (the unit tests check it against
    :func:`powermeter.methodology.merkle.merkle_root`), and list comprehensions over ``hashlib``
    make it about 1 µs per entry.
    """
    sha = hashlib.sha256
    level = [sha(b"\x00" + e.encode("utf-8")).digest() for e in entries]
    n = len(level)
    if n == 0:
        return sha(b"").digest(), 0
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        it = iter(level)
        level = [sha(b"\x01" + left + right).digest() for left, right in zip(it, it, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0], n


def content_digest(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a report without its signature and coverage entries
    (those are bound by the signed head's Merkle root instead)."""
    body = {k: v for k, v in document.items() if k != "signature"}
    coverage = body.get("coverage")
    if isinstance(coverage, Mapping):
        body["coverage"] = {k: v for k, v in coverage.items() if k != "entries"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def report_head(
    *, report_id: str, report_type: str, generated_at: str, merkle_root_hex: str, tree_size: int,
    content_sha256: str, key_id: str,
) -> dict[str, Any]:
    return {
        "type": HEAD_TYPE,
        "report_type": report_type,
        "report_id": report_id,
        "generated_at": generated_at,
        "merkle_root_sha256": merkle_root_hex,
        "tree_size": tree_size,
        "content_sha256": content_sha256,
        "key_id": key_id,
    }


def signed_bytes(head: Mapping[str, Any]) -> bytes:
    """The exact bytes the server signs: canonical JSON (RFC 8785) of the report head."""
    return canonical_json(dict(head))


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def _duplicates(entries: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    dup = []
    for e in entries:
        if e in seen:
            dup.append(e)
        seen.add(e)
    return dup


def check_document(document: Mapping[str, Any]) -> tuple[list[Check], dict[str, Any] | None]:
    """Every check of a report except the Ed25519 signature itself (which needs a crypto library).

    Returns the checks and the head the signature must cover (``None`` when the file has no usable
    head). The caller verifies the signature over :func:`signed_bytes` of that head.
    """
    checks: list[Check] = []
    sig = document.get("signature")
    coverage = document.get("coverage")
    if not isinstance(sig, Mapping) or not isinstance(sig.get("head"), Mapping):
        return [Check("structure", False, "no signature head in the file")], None
    if not isinstance(coverage, Mapping) or not isinstance(coverage.get("entries"), list):
        return [Check("structure", False, "no coverage entries in the file")], None
    head = dict(sig["head"])
    entries = coverage["entries"]
    if not all(isinstance(e, str) for e in entries):
        return [Check("structure", False, "coverage entries must be strings")], None
    bad = [e for e in entries if e.split(":", 1)[0] not in KINDS or e.count(":") < 2]
    checks.append(Check("entry format", not bad, f"{len(bad)} malformed entries" if bad else LEAF_FORMAT))
    dup = _duplicates(entries)
    checks.append(Check("no duplicates", not dup, f"duplicated: {dup[:3]}" if dup else "each record once"))
    root, size = coverage_root(entries)
    checks.append(
        Check(
            "merkle root",
            root.hex() == head.get("merkle_root_sha256") == coverage.get("merkle_root_sha256"),
            f"recomputed {root.hex()} over {size} entries; signed {head.get('merkle_root_sha256')}",
        )
    )
    totals = document.get("totals")
    records = totals.get("records") if isinstance(totals, Mapping) else None
    checks.append(
        Check(
            "record count",
            size == head.get("tree_size") == coverage.get("tree_size") == records,
            f"{size} entries; signed tree size {head.get('tree_size')}; report totals {records}",
        )
    )
    digest = content_digest(document)
    checks.append(
        Check(
            "content digest",
            digest == head.get("content_sha256"),
            "figures, lines and metadata unchanged" if digest == head.get("content_sha256")
            else f"recomputed {digest}, signed {head.get('content_sha256')}",
        )
    )
    same = (
        head.get("report_id") == document.get("report_id")
        and head.get("report_type") == document.get("type")
        and head.get("generated_at") == document.get("generated_at")
        and head.get("type") == HEAD_TYPE
    )
    checks.append(Check("head matches report", same, "report id, type and time" if same else "head differs"))
    return checks, head
