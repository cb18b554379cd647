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
from typing import Any

from powermeter.methodology.canonical import canonical_bytes, plain_double, presorted_bytes
from powermeter.methodology.merkle import merkle_root
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

GROUP_BY = ("month", "location", "provider", "model", "key", "site", "application")
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


SCOPE2 = GhgCategory(
    code="scope2",
    scope=2,
    category=None,
    name="Scope 2: purchased electricity for compute on hardware the account owns, leases or co-locates",
    method="location-based (grid-average factor of the job's location) and market-based (the site's "
    "contractual instruments, else the residual mix, else the grid average; each factor labelled)",
    standard=GHG_SCOPE2,
)
SCOPE2_LOCATION = SCOPE2  # the name before market-based figures were added
SCOPE3_CAT1 = GhgCategory(
    code="scope3_cat1",
    scope=3,
    category=1,
    name="Scope 3 Category 1: purchased goods and services (cloud compute and AI inference services)",
    method="average-data (estimated supplier electricity × grid-average factor; supplier-specific: no)",
    standard=GHG_SCOPE3,
)
UNCLASSIFIED = GhgCategory(
    code="unclassified",
    scope=0,
    category=None,
    name="Unclassified: compute jobs sent with neither ownership nor provider (not booked in any scope)",
    method="as for Scope 2 location-based; to be classified by the account (send ownership)",
    standard=GHG_CORPORATE,
)
CATEGORIES = (SCOPE2, SCOPE3_CAT1, UNCLASSIFIED)
_BY_CODE = {c.code: c for c in CATEGORIES}

OWNERSHIP_VALUES = ("owned", "leased", "colocation", "cloud")
CONSOLIDATION_APPROACHES = ("operational_control", "financial_control", "equity_share")


def classify_job(ownership: str | None, provider: str | None, own_hardware_flag: str | None = None) -> tuple[str, str]:
    """(category code, basis of the decision) of one compute job.

    ``ownership`` decides when given: owned, leased or colocation → Scope 2 (the account buys the
    electricity of hardware under its control: operational-control consolidation), cloud → Scope 3
    Category 1. Otherwise an on-premises ``provider`` word (or the legacy ``own_hardware`` flag)
    → Scope 2, any other provider → cloud (Scope 3 Category 1); neither → unclassified.
    """
    if ownership:
        o = ownership.strip().lower()
        if o in ("owned", "leased", "colocation"):
            return SCOPE2.code, f"ownership {o}"
        if o == "cloud":
            return SCOPE3_CAT1.code, "ownership cloud"
    if own_hardware_flag is not None or (provider and provider.strip()):
        if is_own_hardware(provider, own_hardware_flag):
            return SCOPE2.code, f"provider {provider!r} (on-premises word)"
        return SCOPE3_CAT1.code, f"provider {provider!r} (cloud)"
    return UNCLASSIFIED.code, "neither ownership nor provider given"


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


def ghg_category(kind: str, own_hardware: bool, category: str | None = None) -> GhgCategory:
    """GHG Protocol category of one record: ``category`` when the caller classified it, else Scope 2
    for jobs on the account's own hardware, Scope 3 Category 1 for purchased cloud compute and for
    every AI inference request."""
    if category is not None:
        if kind == KIND_INFERENCE:
            return SCOPE3_CAT1
        return _BY_CODE[category]
    if kind == KIND_JOB and own_hardware:
        return SCOPE2
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
    year: int | None = field(default=None, compare=False)  # the factor's data year, when known

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
    category: str | None = None  # classified by the caller (else from own_hardware)
    co2e_embodied_g: float = 0.0
    co2e_min_g: float | None = None  # None: no range recorded (min = max = the estimate)
    co2e_max_g: float | None = None
    market_co2e_g: float | None = None  # Scope 2 rows: market-based emissions
    market_factor: MarketFactorRef | None = None
    records_with_defaults: int = 0
    estimated_records: int = 0
    measured_records: int = 0
    #: the location factor's basis (combustion / lifecycle / unknown)
    basis: str = "unknown"
    #: lifecycle factor split with a combustion counterpart: generation (Scope 2) part and upstream
    #: (Scope 3 Category 3) part of the usage emissions; ``None``: not split
    generation_co2e_g: float | None = None
    upstream_co2e_g: float = 0.0
    combustion_factor: CombustionFactorRef | None = None
    #: the dataset versions the records were made with, sorted (name, version) pairs
    dataset_versions: tuple[tuple[str, str], ...] = ()
    #: activity year − the location factor's year (None: unknown)
    vintage_gap_years: int | None = None


@dataclass(frozen=True, slots=True)
class CombustionFactorRef:
    """A generation (combustion) grid factor paired with a lifecycle one of the same place, so the
    lifecycle figure splits into Scope 2 (combustion) and Scope 3 Category 3 (the remainder)."""

    location: str
    intensity_g_per_kwh: float
    year: int
    source: str
    dataset_version: str
    lifecycle_g_per_kwh: float
    verification: str

    @property
    def key(self) -> tuple[object, ...]:
        return (
            self.location,
            self.intensity_g_per_kwh,
            self.year,
            self.source,
            self.dataset_version,
            self.lifecycle_g_per_kwh,
        )


@dataclass(frozen=True, slots=True)
class MarketFactorRef:
    """The market-based factor applied to a Scope 2 record (hierarchy level, value, provenance)."""

    level: str  # instrument | residual_mix | grid_average
    label: str
    intensity_g_per_kwh: float
    source: str
    dataset_version: str | None
    basis: str
    verification: str
    year: int | None

    @property
    def key(self) -> tuple[object, ...]:
        return (self.level, self.label, self.intensity_g_per_kwh, self.source, self.dataset_version)


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
    embodied_g: list[float] = field(default_factory=list)
    min_g: list[float] = field(default_factory=list)
    max_g: list[float] = field(default_factory=list)
    market_g: list[float] = field(default_factory=list)
    market_ids: set[str] = field(default_factory=set)
    market_records: int = 0
    with_defaults: int = 0
    estimated: int = 0
    measured: int = 0
    generation_g: list[float] = field(default_factory=list)
    upstream_g: list[float] = field(default_factory=list)
    basis: dict[str, int] = field(default_factory=dict)
    combustion_ids: set[str] = field(default_factory=set)
    max_gap: int | None = None

    def add(self, row: AggregateRow, factor_id: str | None, market_id: str | None = None,
            combustion_id: str | None = None) -> None:  # fmt: skip
        usage = row.co2e_g - row.co2e_embodied_g
        if row.generation_co2e_g is None:
            self.generation_g.append(usage)
            b = row.basis if row.basis in ("combustion", "unknown") else "lifecycle_only"
        else:
            self.generation_g.append(row.generation_co2e_g)
            self.upstream_g.append(row.upstream_co2e_g)
            b = "lifecycle_split"
        self.basis[b] = self.basis.get(b, 0) + row.records
        if combustion_id is not None:
            self.combustion_ids.add(combustion_id)
        if row.vintage_gap_years is not None and (self.max_gap is None or row.vintage_gap_years > self.max_gap):
            self.max_gap = row.vintage_gap_years
        self.embodied_g.append(row.co2e_embodied_g)
        self.min_g.append(row.co2e_g if row.co2e_min_g is None else row.co2e_min_g)
        self.max_g.append(row.co2e_g if row.co2e_max_g is None else row.co2e_max_g)
        if row.market_co2e_g is not None:
            self.market_g.append(row.market_co2e_g)
            self.market_records += row.records
        if market_id is not None:
            self.market_ids.add(market_id)
        self.with_defaults += row.records_with_defaults
        self.estimated += row.estimated_records
        self.measured += row.measured_records
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
        co2 = math.fsum(self.co2e_g)
        embodied = math.fsum(self.embodied_g)
        return {
            "records": self.records,
            "compute_job_receipts": self.jobs,
            "inference_records": self.inferences,
            "energy_kwh": math.fsum(self.energy_kwh),
            "co2e_kg": co2 / G_PER_KG,
            "co2e_usage_kg": math.fsum([*self.co2e_g, *(-e for e in self.embodied_g)]) / G_PER_KG,
            "co2e_embodied_kg": embodied / G_PER_KG,
            "co2e_min_kg": math.fsum(self.min_g) / G_PER_KG,
            "co2e_max_kg": math.fsum(self.max_g) / G_PER_KG,
            "market_based_co2e_kg": math.fsum(self.market_g) / G_PER_KG if self.market_records else None,
            "water_l": math.fsum(self.water_ml) / ML_PER_L if self.water_records else None,
            "water_records": self.water_records,
            "co2e_usage_generation_kg": math.fsum(self.generation_g) / G_PER_KG,
            "co2e_usage_upstream_kg": math.fsum(self.upstream_g) / G_PER_KG,
            "location_factor_basis": {k: self.basis.get(k, 0) for k in BASIS_CLASSES},
            "basis_flags": _basis_flags(self.basis),
            "location_factor_max_vintage_gap_years": self.max_gap,
            "data_quality": {
                "records_with_defaults": self.with_defaults,
                "share_with_defaults": self.with_defaults / self.records if self.records else None,
                "estimated_records": self.estimated,
                "measured_records": self.measured,
            },
        }


#: How a record's location factor relates to the GHG Protocol Scope 2 basis (generation, combustion):
#: ``combustion`` (used as is), ``lifecycle_split`` (split into a combustion part and an upstream
#: remainder with a paired combustion factor), ``lifecycle_only`` (no combustion factor for that place:
#: the figure includes upstream emissions and is flagged), ``unknown`` (the source does not say).
BASIS_CLASSES = ("combustion", "lifecycle_split", "lifecycle_only", "unknown")


def _basis_flags(counts: Mapping[str, int]) -> list[str]:
    out = []
    if counts.get("lifecycle_only"):
        out.append(
            f"{counts['lifecycle_only']} record(s) on a lifecycle factor with no combustion counterpart in "
            "the data: their location-based figure includes upstream (Scope 3 Category 3) emissions, "
            "not split out"
        )
    if counts.get("unknown"):
        out.append(f"{counts['unknown']} record(s) on a factor whose source does not state its basis")
    if counts.get("combustion"):
        out.append(
            f"{counts['combustion']} record(s) on a combustion factor with no lifecycle counterpart: "
            "their upstream (Scope 3 Category 3) emissions are not estimated"
        )
    return out


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Everything numeric in a report, JSON-ready (floats unrounded; units in the names)."""

    lines: list[dict[str, Any]]
    totals: dict[str, Any]
    by_ghg_category: list[dict[str, Any]]
    series: list[dict[str, Any]]
    emission_factors: list[dict[str, Any]]
    methodology_versions: list[str]
    market_factors: list[dict[str, Any]] = field(default_factory=list)
    combustion_factors: list[dict[str, Any]] = field(default_factory=list)
    dataset_version_sets: list[dict[str, Any]] = field(default_factory=list)


def factor_basis_of(source: str | None) -> str:
    """combustion / lifecycle / unknown, from a grid factor's source (see data.residual_mixes)."""
    t = (source or "").lower()
    if "egrid" in t or "residual mix" in t or t.startswith("aib"):
        return "combustion"
    if "our world in data" in t or "ember" in t or "electricity maps" in t or "lifecycle" in t:
        return "lifecycle"
    return "unknown"


def _factor_sort_key(f: EmissionFactorRef) -> tuple[str, float, str, str]:
    return (f.location, f.intensity_g_per_kwh or 0.0, f.source or "", f.dataset_version or "")


def _merge(rows: Iterable[AggregateRow]) -> list[AggregateRow]:
    """Rows that differ only in their figures, merged into one partial sum (``math.fsum`` per figure):
    one row per distinct (month, group, category, factors, methodology, dataset versions, …)."""
    groups: dict[tuple[object, ...], list[AggregateRow]] = {}
    for r in rows:
        k = (r.kind, r.month, r.group, r.own_hardware, r.factor, r.methodology_version, r.category, r.market_factor,
             r.basis, r.combustion_factor, r.dataset_versions, r.vintage_gap_years, r.generation_co2e_g is None,
             r.co2e_min_g is None, r.co2e_max_g is None, r.market_co2e_g is None)  # fmt: skip
        groups.setdefault(k, []).append(r)
    out = []
    fsum = math.fsum
    for rs in groups.values():
        r0 = rs[0]
        if len(rs) == 1:
            out.append(r0)
            continue
        cols = list(zip(*[(r.records, r.energy_kwh, r.co2e_g, r.water_ml, r.water_records, r.co2e_embodied_g,
                           r.records_with_defaults, r.estimated_records, r.measured_records, r.upstream_co2e_g)
                          for r in rs], strict=True))  # fmt: skip
        opt = {
            name: None if getattr(r0, name) is None else fsum([getattr(r, name) for r in rs])
            for name in ("co2e_min_g", "co2e_max_g", "market_co2e_g", "generation_co2e_g")
        }
        out.append(AggregateRow(
            r0.kind, r0.month, r0.group, r0.own_hardware, r0.factor, r0.methodology_version,
            sum(cols[0]), fsum(cols[1]), fsum(cols[2]), fsum(cols[3]), sum(cols[4]), r0.category, fsum(cols[5]),
            opt["co2e_min_g"], opt["co2e_max_g"], opt["market_co2e_g"], r0.market_factor,
            sum(cols[6]), sum(cols[7]), sum(cols[8]), r0.basis, opt["generation_co2e_g"], fsum(cols[9]),
            r0.combustion_factor, r0.dataset_versions, r0.vintage_gap_years,
        ))  # fmt: skip
    return out


def build_figures(
    rows: Iterable[AggregateRow],
    group_by: str,
    group_labels: Mapping[str, str] | None = None,
) -> ReportFigures:
    """Fold partial sums into lines (group × GHG category × set of dataset versions), totals,
    per-category totals, a month × group series and the lists of factors used."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
    rows = _merge(rows)
    labels = group_labels or {}
    factors = sorted({r.factor for r in rows if r.factor is not None}, key=_factor_sort_key)
    factor_ids = {f.key: f"EF{i + 1}" for i, f in enumerate(factors)}
    factor_records: dict[str, int] = {}
    markets = sorted(
        {r.market_factor for r in rows if r.market_factor is not None}, key=lambda m: tuple(map(str, m.key))
    )
    market_ids = {m.key: f"MF{i + 1}" for i, m in enumerate(markets)}
    market_records: dict[str, int] = {}
    combustions = sorted(
        {r.combustion_factor for r in rows if r.combustion_factor is not None}, key=lambda c: tuple(map(str, c.key))
    )
    combustion_ids = {c.key: f"CF{i + 1}" for i, c in enumerate(combustions)}
    combustion_records: dict[str, int] = {}
    version_sets = sorted({r.dataset_versions for r in rows})
    version_ids = {v: f"DV{i + 1}" for i, v in enumerate(version_sets)}
    version_records: dict[str, int] = {}

    lines: dict[tuple[str, str, str], _Acc] = {}
    categories: dict[str, _Acc] = {}
    series: dict[tuple[str, str], _Acc] = {}
    total = _Acc()
    for code in (SCOPE2.code, SCOPE3_CAT1.code, UNCLASSIFIED.code):
        categories[code] = _Acc()  # every report shows every bucket, unclassified included
    for r in rows:
        cat = ghg_category(r.kind, r.own_hardware, r.category).code
        fid = factor_ids[r.factor.key] if r.factor is not None else None
        if fid is not None:
            factor_records[fid] = factor_records.get(fid, 0) + r.records
        mid = market_ids[r.market_factor.key] if r.market_factor is not None else None
        if mid is not None:
            market_records[mid] = market_records.get(mid, 0) + r.records
        cid = combustion_ids[r.combustion_factor.key] if r.combustion_factor is not None else None
        if cid is not None:
            combustion_records[cid] = combustion_records.get(cid, 0) + r.records
        vid = version_ids[r.dataset_versions]
        version_records[vid] = version_records.get(vid, 0) + r.records
        for acc in (
            lines.setdefault((r.group, cat, vid), _Acc()),
            categories.setdefault(cat, _Acc()),
            series.setdefault((r.month, r.group), _Acc()),
            total,
        ):
            acc.add(r, fid, mid, cid)

    def group_order(group: str, acc: _Acc) -> tuple[object, ...]:
        if group_by == "month":
            return (group,)
        return (-math.fsum(acc.co2e_g), group)

    group_totals: dict[str, _Acc] = {}
    for (group, _cat, _vid), acc in lines.items():
        g = group_totals.setdefault(group, _Acc())
        g.co2e_g.extend(acc.co2e_g)
    order = {g: i for i, g in enumerate(sorted(group_totals, key=lambda g: group_order(g, group_totals[g])))}
    cat_order = {c.code: i for i, c in enumerate(CATEGORIES)}
    versions_of = {vid: dict(v) for v, vid in version_ids.items()}

    out_lines = []
    for (group, cat, vid), acc in sorted(
        lines.items(), key=lambda kv: (order[kv[0][0]], cat_order[kv[0][1]], int(kv[0][2][2:]))
    ):
        out_lines.append(
            {
                "group": group,
                "group_label": labels.get(group, group),
                "ghg": _BY_CODE[cat].as_dict(),
                "dataset_versions_id": vid,
                "dataset_versions": versions_of[vid],
                **acc.figures(),
                "emission_factor_ids": sorted(acc.factor_ids, key=lambda s: int(s[2:])),
                "market_factor_ids": sorted(acc.market_ids, key=lambda s: int(s[2:])),
                "combustion_factor_ids": sorted(acc.combustion_ids, key=lambda s: int(s[2:])),
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
            "basis": factor_basis_of(f.source),
            "year": f.year,
            "records": factor_records.get(factor_ids[f.key], 0),
        }
        for f in factors
    ]
    out_markets = [
        {
            "id": market_ids[m.key],
            "kind": "market_based_emission_factor",
            "hierarchy_level": m.level,
            "label": m.label,
            "value": m.intensity_g_per_kwh,
            "unit": "gCO2/kWh" if m.level == "residual_mix" else "gCO2e/kWh",
            "source": m.source,
            "dataset_version": m.dataset_version,
            "basis": m.basis,
            "verification": m.verification,
            "year": m.year,
            "records": market_records.get(market_ids[m.key], 0),
        }
        for m in markets
    ]
    out_combustion = [
        {
            "id": combustion_ids[c.key],
            "kind": "grid_generation_combustion_factor",
            "location": c.location,
            "value": c.intensity_g_per_kwh,
            "unit": "gCO2e/kWh",
            "basis": "combustion",
            "year": c.year,
            "source": c.source,
            "dataset_version": c.dataset_version,
            "paired_lifecycle_value": c.lifecycle_g_per_kwh,
            "verification": c.verification,
            "records": combustion_records.get(combustion_ids[c.key], 0),
        }
        for c in combustions
    ]
    out_versions = [
        {"id": version_ids[v], "versions": dict(v), "records": version_records.get(version_ids[v], 0)}
        for v in version_sets
    ]
    return ReportFigures(
        lines=out_lines,
        totals=total.figures(),
        by_ghg_category=out_categories,
        series=out_series,
        emission_factors=out_factors,
        methodology_versions=sorted(total.methodologies),
        market_factors=out_markets,
        combustion_factors=out_combustion,
        dataset_version_sets=out_versions,
    )


# --- ESRS E1 ------------------------------------------------------------------------------------

ESRS_LIMITS = (
    "Scope 1 is not covered: powermeter sees electricity use only, not fuels burnt by the undertaking.",
    "Scope 2 covers compute jobs the account marked as owned, leased or co-located (or sent with an "
    "on-premises provider word), estimated from allocated resources and reference power draws unless the "
    "record says it was measured. Jobs sent with neither ownership nor provider are shown as 'unclassified' "
    "and are in no scope until the account classifies them.",
    "Scope 2 market-based: per site, the contractual instruments the account entered (supplier-specific "
    "rate, certificates, PPA) apply to their covered share; the rest uses the AIB European residual mix of "
    "the location's country (direct CO2 only; figures transcribed from a secondary source, see the factor's "
    "'verification'); the US has no Green-e residual mix in the data (not sourced offline: labelled "
    "'no_residual_mix', using the eGRID combustion grid average where available); elsewhere without a "
    "residual mix the location-based grid factor is used and labelled 'grid_average'.",
    "Scope 3: Category 1 (purchased cloud compute and AI inference) with average-data estimates "
    "(supplier-specific: no), and Category 3 (upstream of purchased electricity) only where a Scope 2 "
    "record's lifecycle location factor has a combustion counterpart in the data (today the United "
    "States: OWID lifecycle − eGRID combustion, two publishers, so the remainder also absorbs their "
    "methodological differences). Elsewhere a lifecycle factor's upstream part stays inside the Scope 2 "
    "location-based figure, flagged per line (location_factor_basis, basis_flags); T&D losses are not "
    "estimated.",
    "E1-5 energy: only the electricity of Scope 2 jobs is own-operations energy. Its fossil / nuclear / "
    "renewable split applies the country's generation shares (location-based), not a supplier's mix; "
    "electricity at locations without country shares is reported as 'unknown'.",
    "Water (E3-4) of purchased AI inference is the supplier's consumption, given as value-chain context; "
    "compute-job receipts carry no water estimate.",
    "Figures are estimates from reference data (methodology and dataset versions are listed); they have "
    "not been assured by a third party.",
    "The CSRD timetable and the ESRS datapoints were amended by the 2025 'Omnibus' simplification "
    "package; check the obligations that currently apply to the undertaking before filing.",
)

#: ESRS E1 datapoints and how far this report covers them.
ESRS_DATAPOINTS = (
    ("E1-5", "total energy consumption from own operations", "partial", "electricity of Scope 2 compute jobs only"),
    (
        "E1-5",
        "fossil / nuclear / renewable split of energy consumption",
        "partial",
        "location-based: country generation shares applied to Scope 2 electricity",
    ),
    ("E1-5", "energy intensity per net revenue", "not covered", "no revenue data"),
    ("E1-6", "gross Scope 1 GHG emissions", "not covered", "no fuel or process data"),
    ("E1-6", "gross location-based Scope 2 GHG emissions", "partial", "contribution of compute jobs"),
    (
        "E1-6",
        "gross market-based Scope 2 GHG emissions",
        "partial",
        "contribution of compute jobs; instruments as entered by the account, else residual mix",
    ),
    (
        "E1-6",
        "gross Scope 3 GHG emissions (significant categories)",
        "partial",
        "contribution to Category 1, and to Category 3 where a lifecycle factor has a combustion pair",
    ),
    (
        "E1-6",
        "total GHG emissions (location- and market-based)",
        "partial",
        "sum of the contributions above; no Scope 1",
    ),
    (
        "E1-6",
        "biogenic CO2 emissions reported separately",
        "not covered",
        "no factor in the data separates biogenic CO2",
    ),
    ("E1-6", "share of Scope 3 calculated from primary data", "present", "measured records / all records"),
    ("E1-6", "GHG intensity per net revenue", "not covered", "no revenue data"),
)


def _tonnes(co2e_kg: float) -> float:
    return co2e_kg / KG_PER_TONNE


def esrs_e1_view(figures: ReportFigures, energy_mix: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ESRS E1-5 / E1-6 contributions the data support, with every gap stated (``None`` + a reason).

    Every figure is this data's *contribution* to the datapoint, never the datapoint itself."""
    cats = {c["ghg"]["code"]: c for c in figures.by_ghg_category}
    s2 = cats.get(SCOPE2.code)
    s3 = cats.get(SCOPE3_CAT1.code)
    un = cats.get(UNCLASSIFIED.code)
    s2_kwh = s2["energy_kwh"] if s2 else 0.0
    s2_t = _tonnes(s2["co2e_usage_generation_kg"]) if s2 else 0.0  # generation part (jobs carry no embodied)
    s3c3_t = _tonnes(s2["co2e_usage_upstream_kg"]) if s2 else 0.0
    s2_basis = s2["location_factor_basis"] if s2 else {}
    s2_market = s2.get("market_based_co2e_kg") if s2 else None
    s2_m_t = _tonnes(s2_market) if s2_market is not None else (0.0 if not s2 or not s2["records"] else None)
    s3_kwh = s3["energy_kwh"] if s3 else 0.0
    s3_t = _tonnes(s3["co2e_kg"]) if s3 else 0.0
    s3_water = s3["water_l"] if s3 else None
    s3_records = s3["records"] if s3 else 0
    s3_measured = s3["data_quality"]["measured_records"] if s3 else 0
    return {
        "standard": ESRS_E1,
        "units": {"energy": "MWh", "emissions": "tCO2e", "water": "m3"},
        "E1-5": {
            "title": "Energy consumption and mix",
            "contribution_to_total_energy_consumption_own_operations_mwh": s2_kwh / KWH_PER_MWH,
            "covers": f"electricity of Scope 2 compute jobs ({s2['records'] if s2 else 0} receipts)",
            "fossil_nuclear_renewable_breakdown": energy_mix,
            "fossil_nuclear_renewable_breakdown_basis": "location-based: each Scope 2 record's kWh × the "
            "generation shares of its location's country (Our World in Data / Ember, same rows as the grid "
            "factors); a supplier's disclosed mix is not used",
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
            "contribution_to_gross_scope_2_location_based_tco2e": s2_t,
            "scope_2_location_based_basis": {
                "records_by_factor_basis": s2_basis,
                "note": "generation (combustion) factors where the data has them; records counted as "
                "lifecycle_only are on a lifecycle factor with no combustion counterpart and include upstream "
                "emissions (flagged, not split)",
            },
            "contribution_to_gross_scope_2_market_based_tco2e": s2_m_t,
            "contribution_to_gross_scope_3_tco2e": s3_t + s3c3_t,
            "gross_scope_3_note": "Category 1 (purchased cloud compute and AI inference) and the part of Category 3 "
            "(upstream of purchased electricity) split from lifecycle factors of Scope 2 records; the "
            "undertaking's other Scope 3 categories are not in this data",
            "scope_3_categories": [
                {
                    "category": 1,
                    "name": "Purchased goods and services",
                    "tco2e": s3_t,
                    "records": s3_records,
                    "method": SCOPE3_CAT1.method,
                },
                {
                    "category": 3,
                    "name": "Fuel- and energy-related activities (upstream of purchased electricity)",
                    "tco2e": s3c3_t,
                    "records": s2_basis.get("lifecycle_split", 0) if s2_basis else 0,
                    "method": "lifecycle − combustion grid factor of the same place, for Scope 2 records whose "
                    "location factor is lifecycle and has a combustion counterpart; partial: transmission and "
                    "distribution losses and records without a pair are not estimated",
                },
            ],
            "share_of_scope_3_from_primary_data": (s3_measured / s3_records) if s3_records else None,
            "biogenic_co2_tco2e": None,
            "biogenic_co2_reason": "no emission factor in the data separates biogenic CO2",
            "contribution_to_total_ghg_emissions_location_based_tco2e": s2_t + s3_t + s3c3_t,
            "contribution_to_total_ghg_emissions_market_based_tco2e": None
            if s2_m_t is None
            else s2_m_t + s3_t + s3c3_t,
            "total_note": "Scope 2 + Scope 3 Category 1 and 3 contributions; Scope 1 and unclassified records not "
            "included",
            "unclassified_tco2e": _tonnes(un["co2e_kg"]) if un else 0.0,
            "unclassified_records": un["records"] if un else 0,
            "unclassified_note": "compute jobs sent with neither ownership nor provider: in no scope until classified",
        },
        "E3-4_context": {
            "purchased_ai_inference_water_m3": None if s3_water is None else s3_water / ML_PER_L,
            "note": "water consumed by suppliers serving AI inference requests (value-chain context, not "
            "own-operations water consumption)",
        },
        "datapoint_coverage": [
            {"disclosure": d, "datapoint": name, "status": status, "note": note}
            for d, name, status, note in ESRS_DATAPOINTS
        ],
        "display": {
            "rounding": "half-even to 3 decimals of the unit (0.001 tCO2e = 1 kg, 0.001 MWh = 1 kWh); the "
            "figures above are exact and are the ones signed",
            "scope_2_location_based_tco2e": _display(s2_t),
            "scope_2_market_based_tco2e": _display(s2_m_t),
            "scope_3_category_1_tco2e": _display(s3_t),
            "scope_3_category_3_tco2e": _display(s3c3_t),
            "unclassified_tco2e": _display(_tonnes(un["co2e_kg"]) if un else 0.0),
            "own_operations_energy_mwh": _display(s2_kwh / KWH_PER_MWH),
        },
        "data_limits": list(ESRS_LIMITS),
    }


def _display(x: float | None) -> str | None:
    """A figure rounded for display (fixed 3 decimals, no exponent), or ``None``."""
    return None if x is None else f"{round(x, 3):.3f}"


# --- coverage and signing -----------------------------------------------------------------------


def inference_record_sha256(
    record_id: str, log_date: str, provider: str, model_id: str, energy_wh: float, co2_grams: float, water_ml: float
) -> str:
    """SHA-256 (hex) of an inference record as the history API shows it: the canonical JSON (RFC 8785)
    of ``{"co2Grams", "energyWh", "id", "logDate", "modelId", "provider", "waterMl"}``, with
    ``logDate`` as ``YYYY-MM-DDTHH:MM:SSZ``. A report hashes every record it covers: when every number
    is a :func:`plain_double`, the object (keys written in canonical order) goes to :func:`presorted_bytes`."""
    record: dict[str, str | float] = {
        "co2Grams": co2_grams, "energyWh": energy_wh, "id": record_id, "logDate": log_date, "modelId": model_id,
        "provider": provider, "waterMl": water_ml,
    }  # fmt: skip
    if plain_double(co2_grams) and plain_double(energy_wh) and plain_double(water_ml):
        return hashlib.sha256(presorted_bytes(record)).hexdigest()
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


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
    """SHA-256 (hex) of the canonical JSON (RFC 8785) of a report without its signature and coverage
    entries (those are bound by the signed head's Merkle root instead)."""
    body = {k: v for k, v in document.items() if k != "signature"}
    coverage = body.get("coverage")
    if isinstance(coverage, Mapping):
        body["coverage"] = {k: v for k, v in coverage.items() if k != "entries"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def report_head(
    *,
    report_id: str,
    report_type: str,
    generated_at: str,
    merkle_root_hex: str,
    tree_size: int,
    content_sha256: str,
    key_id: str,
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
    return canonical_bytes(dict(head))


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
            "figures, lines and metadata unchanged"
            if digest == head.get("content_sha256")
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


# --- re-performance and completeness -----------------------------------------------------------------

_REL = 1e-9


def _near(a: float, b: float, abs_tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=abs_tol)


def _names(items: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


_SUMS = ("kwh", "co2", "emb", "min", "max", "mkt", "gen", "ups")


def check_arithmetic(document: Mapping[str, Any]) -> list[Check]:
    """Re-perform every entry (factor × activity) and every line (sum of its entries) and the totals
    (sum of the lines) from the figures in the file alone."""
    entries = document.get("entries")
    lines = document.get("lines")
    if not isinstance(entries, list) or not isinstance(lines, list):
        return [Check("arithmetic", False, "no entries or lines to re-perform")]
    factors = {f.get("id"): f for f in document.get("emission_factors") or () if isinstance(f, Mapping)}
    markets = {f.get("id"): f for f in document.get("market_factors") or () if isinstance(f, Mapping)}
    combustion = {f.get("id"): f for f in document.get("combustion_factors") or () if isinstance(f, Mapping)}
    bad_entries: list[str] = []
    sums: dict[int, dict[str, list[float]]] = {}
    for e in entries:
        if not isinstance(e, Mapping):
            bad_entries.append("(not an object)")
            continue
        name = f"{e.get('kind')}:{e.get('id')}"
        try:
            kwh = float(e["energy_kwh"])
            co2, usage, emb = float(e["co2e_g"]), float(e["co2e_usage_g"]), float(e["co2e_embodied_g"])
            f = factors.get(e.get("factor_id"))
            ok = f is not None and isinstance(f.get("value"), int | float)
            if ok and f is not None:
                if e["kind"] == KIND_JOB:
                    ok = _near(co2, kwh * float(f["value"]), 1e-9) and emb == 0.0 and _near(usage, co2)
                else:  # inference figures are stored rounded to 1e-6 g
                    ok = math.isclose(usage, kwh * float(f["value"]), rel_tol=1e-6, abs_tol=2e-6) and math.isclose(
                        usage + emb, co2, rel_tol=1e-9, abs_tol=3e-6
                    )
            m = e.get("market")
            if ok and isinstance(m, Mapping):
                mf = markets.get(m.get("factor_id"))
                ok = mf is not None and _near(float(m["co2e_g"]), kwh * float(mf["value"]))
            up = e.get("upstream")
            if isinstance(up, Mapping):
                cf = combustion.get(up.get("combustion_factor_id"))
                gen, ups = float(up["generation_co2e_g"]), float(up["upstream_co2e_g"])
                ok = ok and cf is not None and _near(gen, kwh * float(cf["value"])) and _near(gen + ups, co2 - emb)
            else:
                gen, ups = co2 - emb, 0.0
            if not ok:
                bad_entries.append(name)
            acc = sums.setdefault(int(e["line"]), {k: [] for k in _SUMS})
            acc["gen"].append(gen)
            acc["ups"].append(ups)
            acc["kwh"].append(kwh)
            acc["co2"].append(co2)
            acc["emb"].append(emb)
            acc["min"].append(float(e.get("co2e_min_g", co2)))  # absent: no range (min = max = the estimate)
            acc["max"].append(float(e.get("co2e_max_g", co2)))
            if isinstance(m, Mapping):
                acc["mkt"].append(float(m["co2e_g"]))
        except (KeyError, TypeError, ValueError):
            bad_entries.append(name)
    checks = [
        Check(
            "entry arithmetic",
            not bad_entries,
            f"entries that do not re-perform: {_names(bad_entries)}"
            if bad_entries
            else f"{len(entries)} entries: CO2e = energy × listed factor",
        )
    ]
    bad_lines: list[str] = []
    for i, ln in enumerate(lines):
        acc = sums.get(i, {k: [] for k in _SUMS})
        label = f"line {i} ({ln.get('group')}, {ln.get('ghg', {}).get('code')})"
        try:
            ok = (
                len(acc["co2"]) == ln["records"]
                and _near(math.fsum(acc["kwh"]), ln["energy_kwh"], 1e-9)
                and _near(math.fsum(acc["co2"]) / G_PER_KG, ln["co2e_kg"], 1e-9)
                and _near(math.fsum(acc["emb"]) / G_PER_KG, ln["co2e_embodied_kg"], 1e-9)
                and _near(math.fsum(acc["min"]) / G_PER_KG, ln["co2e_min_kg"], 1e-9)
                and _near(math.fsum(acc["max"]) / G_PER_KG, ln["co2e_max_kg"], 1e-9)
                # reports signed before the generation/upstream split have neither field (nothing to check)
                and (
                    "co2e_usage_generation_kg" not in ln
                    or _near(math.fsum(acc["gen"]) / G_PER_KG, ln["co2e_usage_generation_kg"], 1e-9)
                )
                and (
                    "co2e_usage_upstream_kg" not in ln
                    or _near(math.fsum(acc["ups"]) / G_PER_KG, ln["co2e_usage_upstream_kg"], 1e-9)
                )
                and (
                    (ln["market_based_co2e_kg"] is None and not acc["mkt"])
                    or (
                        ln["market_based_co2e_kg"] is not None
                        and _near(math.fsum(acc["mkt"]) / G_PER_KG, ln["market_based_co2e_kg"], 1e-9)
                    )
                )
            )
        except (KeyError, TypeError):
            ok = False
        if not ok:
            bad_lines.append(label)
    extra = sorted(set(sums) - set(range(len(lines))))
    bad_lines += [f"entries point at line {i}, which does not exist" for i in extra]
    checks.append(
        Check(
            "line arithmetic",
            not bad_lines,
            f"lines that are not the sum of their entries: {_names(bad_lines)}"
            if bad_lines
            else f"{len(lines)} lines: each the sum of its entries",
        )
    )
    totals = document.get("totals") or {}
    try:
        tot_ok = _near(math.fsum(ln["co2e_kg"] for ln in lines), totals["co2e_kg"], 1e-9) and _near(
            math.fsum(ln["energy_kwh"] for ln in lines), totals["energy_kwh"], 1e-9
        )
    except (KeyError, TypeError):
        tot_ok = False
    checks.append(
        Check(
            "totals", tot_ok, "totals are the sum of the lines" if tot_ok else "totals differ from the sum of the lines"
        )
    )
    return checks


def check_completeness(document: Mapping[str, Any]) -> list[Check]:
    """Every leaf of every signed tree head listed in the report is accounted for by exactly one record
    whose hash is that leaf (entries, late arrivals, other leaves), and no problem was found when the
    report was built. The tree-head signatures are checked by the caller (crypto)."""
    comp = document.get("completeness")
    if not isinstance(comp, Mapping):
        return [Check("completeness", False, "no completeness section (report made before completeness proofs)")]
    records: list[Mapping[str, Any]] = []
    for key in ("entries",):
        records += [e for e in document.get(key) or () if isinstance(e, Mapping)]
    for key in ("late_arrivals", "other_leaves"):
        records += [e for e in comp.get(key) or () if isinstance(e, Mapping)]
    by_leaf: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    unplaced: list[str] = []
    for r in records:
        if r.get("tree_id") is None or r.get("leaf_index") is None:
            unplaced.append(f"{r.get('kind')}:{r.get('id')}")
            continue
        by_leaf.setdefault((str(r["tree_id"]), int(r["leaf_index"])), []).append(r)
    bad_trees: list[str] = []
    bad_records: list[str] = []
    seen: set[tuple[str, int]] = set()
    trees = comp.get("trees") or []
    for t in trees:
        head = t.get("head") or {}
        try:
            hashes = [bytes.fromhex(h) for h in t.get("leaf_hashes") or ()]
            root_ok = merkle_root(hashes).hex() == head.get("root_sha256") and len(hashes) == head.get("tree_size")
        except (TypeError, ValueError):
            hashes, root_ok = [], False
        if not root_ok:
            bad_trees.append(str(t.get("tree_id")))
        for i, h in enumerate(hashes):
            leaf_key = (str(t.get("tree_id")), i)
            seen.add(leaf_key)
            got = by_leaf.get(leaf_key, [])
            if len(got) != 1 or got[0].get("record_sha256") != h.hex():
                names = [f"{g.get('kind')}:{g.get('id')}" for g in got] or [f"leaf {i} of tree {t.get('tree_id')}"]
                bad_records += names
    stray = [f"{r[0].get('kind')}:{r[0].get('id')}" for k, r in by_leaf.items() if k not in seen]
    problems = [p for p in comp.get("problems") or () if isinstance(p, Mapping)]
    checks = [
        Check(
            "signed trees",
            not bad_trees,
            f"trees whose leaves do not give the signed root: {_names(bad_trees)}"
            if bad_trees
            else f"{len(trees)} anchored tree heads; leaf hashes give each signed root",
        ),
        Check(
            "every leaf accounted for",
            not bad_records,
            f"records missing or altered: {_names(bad_records)}"
            if bad_records
            else "each leaf is one listed record with the leaf's hash",
        ),
        Check(
            "no extra records",
            not (stray or unplaced),
            f"records outside every signed tree: {_names(stray + unplaced)}"
            if stray or unplaced
            else "every listed record belongs to a signed tree",
        ),
        Check(
            "problems found when built",
            not problems,
            "; ".join(f"{p.get('problem')} {p.get('record')}: {p.get('detail')}" for p in problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            if problems
            else "none",
        ),
    ]
    return checks


# --- SCI embodied share of compute jobs -------------------------------------------------------------------

#: Cloud Carbon Footprint embodied coefficients (Teads dataset, ``AWSInstanceTypes.ts``, Apache-2.0;
#: research notes compute_anchors.md §4.2, §12.2): whole-server embodied emissions, lifespan and the
#: family's largest instance (the share denominator).
SCI_EMBODIED_SOURCE = (
    "Cloud Carbon Footprint EmbodiedEmissions.md / AWSInstanceTypes.ts (Teads): m5 server 1.6103792 tCO2e over "
    "96 vCPUs, p4d (8 GPUs) 4.6755184 tCO2e, lifespan 4 years = 35,040 h (Dell R740 LCA)"
)
SCI_EL_HOURS = 35040.0
SCI_TE_CPU_SERVER_G = 1_610_379.2
SCI_CPU_SERVER_VCPUS = 96.0
SCI_TE_GPU_SERVER_G = 4_675_518.4
SCI_GPU_SERVER_GPUS = 8.0


def sci_job_embodied_g(duration_minutes: float, cpu_cores: float, gpus: float) -> float:
    """SCI ``M = TE × (t / EL) × (reserved / total)`` of one compute job: a GPU job's share of an
    8-GPU p4d-class server (its CPUs included), else its vCPUs' share of a 96-vCPU m5-class server."""
    t = duration_minutes / 60.0
    if gpus > 0:
        return SCI_TE_GPU_SERVER_G * (t / SCI_EL_HOURS) * (gpus / SCI_GPU_SERVER_GPUS)
    return SCI_TE_CPU_SERVER_G * (t / SCI_EL_HOURS) * (cpu_cores / SCI_CPU_SERVER_VCPUS)
