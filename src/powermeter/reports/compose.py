"""From the ledger's records to report entries and lines.

Each in-period record becomes one *entry* carrying its figures (energy, CO2e usage and embodied,
min/max, market-based CO2e for Scope 2), the factors applied, its GHG bucket, tags and data-quality
notes, and the index of the report line it is summed into. Records that arrived after their year was
closed are *late arrivals*: listed with their figures, never added to the lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from powermeter.data.grid_basis import CombustionFactors, basis_of, load_combustion_factors
from powermeter.data.locations import LocationIndex, load_locations
from powermeter.data.residual_mixes import ResidualMixes, load_residual_mixes
from powermeter.methodology import reporting as rp
from powermeter.methodology.compute_job import (
    DEFAULT_CPU_W_PER_CORE,
    DEFAULT_GPU_W,
    DEFAULT_PUE,
    UTILIZATION_SOURCE_DEFAULT,
)
from powermeter.reports.boundary import Boundary, Instrument
from powermeter.reports.ledger import ALTERED, OK, Record

NO_KEY_GROUP = "(key not recorded)"
NO_SITE = "(site not given)"
NO_APP = "(application not given)"


@dataclass(slots=True)
class Composed:
    entries: list[dict[str, Any]] = field(default_factory=list)
    rows: list[rp.AggregateRow] = field(default_factory=list)  # partial sums, merged (see _Sums)
    keys: list[tuple[str, str, tuple[tuple[str, str], ...]]] = field(default_factory=list)  # (group, category,
    # dataset versions) of each entry: its line
    late: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    datasets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    coverage: list[str] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job receipt id → its signed inputs
    assumptions: dict[tuple[object, ...], dict[str, Any]] = field(default_factory=dict)  # shared by entries
    sums: _Sums = field(default_factory=lambda: _Sums())

    def assumption_id(self, classification: str, defaults: list[str], warnings: list[str],
                      extra: Mapping[str, Any] | None = None) -> str:  # fmt: skip
        """The id of a set of assumptions (classification, defaulted inputs, warnings, constants), listed
        once in the report's ``assumptions`` and named by every entry that shares it."""
        key = (classification, tuple(defaults), tuple(warnings), tuple(sorted((extra or {}).items())))
        a = self.assumptions.get(key)
        if a is None:
            a = {
                "id": f"A{len(self.assumptions) + 1}",
                "classification": classification,
                "defaults": defaults,
                "warnings": warnings,
                **(extra or {}),
            }
            self.assumptions[key] = a
        return str(a["id"])


# the figures of one entry, in this order: records, energy_kwh, co2e_g, water_ml, water_records, co2e_embodied_g,
# records_with_defaults, estimated_records, measured_records, upstream_co2e_g, co2e_min_g, co2e_max_g,
# market_co2e_g, generation_co2e_g
_Figures = tuple[int, float, float, float, int, float, int, int, int, float, float | None, float | None,
                 float | None, float | None]  # fmt: skip
# what an entry's row shares with its partial sum: kind, month, group, own_hardware, factor,
# methodology_version, category, market_factor, basis, combustion_factor, dataset_versions, vintage_gap_years
_Template = tuple[str, str, str, bool, rp.EmissionFactorRef | None, str, str, rp.MarketFactorRef | None, str,
                  rp.CombustionFactorRef | None, tuple[tuple[str, str], ...], int | None]  # fmt: skip


class _Sums:
    """The entries' figures collected by partial sum, instead of one :class:`rp.AggregateRow` per entry
    (building a million frozen rows cost more than the sums). :meth:`rows` gives exactly the rows
    ``methodology.reporting._merge`` makes of the per-entry rows: one per merge key, each figure a
    ``math.fsum`` (``sum`` for counts) over its entries (exactly rounded, so the order of the entries does not
    matter), and a row of a single entry as that entry's row. The unit tests hold the two to the same figures.

    Entries are first bucketed by a cheap key the caller chooses (a job: its memoised profile's identity,
    month and group), then the buckets by the merge key itself."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[tuple[object, ...], tuple[_Template, list[_Figures]]] = {}

    def add(self, key: tuple[object, ...], template: Callable[[], _Template], figures: _Figures) -> None:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = (template(), [])
        b[1].append(figures)

    def rows(self) -> list[rp.AggregateRow]:
        merged: dict[tuple[object, ...], tuple[_Template, list[_Figures]]] = {}
        for template, figs in self._buckets.values():
            f0 = figs[0]
            k = (*template, f0[13] is None, f0[10] is None, f0[11] is None, f0[12] is None)
            m = merged.get(k)
            if m is None:
                merged[k] = (template, list(figs))
            else:
                m[1].extend(figs)
        return [_sum_row(t, figs) for t, figs in merged.values()]


def _sum_row(t: _Template, figs: list[_Figures]) -> rp.AggregateRow:
    kind, month, group, own, factor, meth, category, market, basis, comb, versions, gap = t
    if len(figs) == 1:
        f = figs[0]
        return rp.AggregateRow(
            kind, month, group, own, factor, meth, f[0], f[1], f[2], f[3], f[4], category, f[5], f[10], f[11], f[12],
            market, f[6], f[7], f[8], basis, f[13], f[9], comb, versions, gap,
        )  # fmt: skip
    fsum = math.fsum
    cols = list(zip(*figs, strict=True))
    opt = [None if figs[0][i] is None else fsum(cols[i]) for i in (10, 11, 12, 13)]
    return rp.AggregateRow(
        kind, month, group, own, factor, meth, sum(cols[0]), fsum(cols[1]), fsum(cols[2]), fsum(cols[3]),
        sum(cols[4]), category, fsum(cols[5]), opt[0], opt[1], opt[2], market, sum(cols[6]), sum(cols[7]),
        sum(cols[8]), basis, opt[3], fsum(cols[9]), comb, versions, gap,
    )  # fmt: skip


def _location_label(locations: LocationIndex, code: str) -> str:
    loc = locations.resolve(code)
    return code if loc is None else f"{loc.name} ({loc.code})"


def market_factor(
    location_code: str, site: str | None, year: int, boundary: Boundary, mixes: ResidualMixes,
    locations: LocationIndex, combustion: CombustionFactors | None = None,
) -> tuple[rp.MarketFactorRef, int | None]:  # fmt: skip
    """The market-based factor of a Scope 2 record (GHG Protocol Scope 2 Guidance hierarchy):
    the site's instrument for its covered share, the rest at the country's residual mix, else at the
    grid average (labelled ``grid_average``, or ``no_residual_mix`` where the dataset says why a market
    has none, e.g. Green-e for the US: then on the combustion basis where the data has a factor).
    Returns the factor and the residual mix's vintage gap in years."""
    combustion = combustion or load_combustion_factors()
    loc = locations.resolve(location_code)
    country = loc.country if loc is not None and loc.country else (location_code if len(location_code) == 2 else None)
    mix = mixes.lookup(country, year)
    gap: int | None = None
    if mix is not None:
        gap = year - mix.data_year
        fallback = rp.MarketFactorRef(
            "residual_mix", f"{mix.scheme} residual mix {mix.country} (data year {mix.data_year})",
            mix.intensity_g_per_kwh, f"{mix.edition}: {mix.source}", mixes.version, mix.basis, mix.verification,
            mix.data_year,
        )  # fmt: skip
    else:
        value = loc.intensity_g_per_kwh if loc is not None else 0.0
        src = loc.source if loc is not None else "unknown location"
        year_of: int | None = loc.year if loc is not None else None
        missing = mixes.unavailable_for(country)
        comb = combustion.lookup(loc.code, year) if loc is not None and missing is not None else None
        why = "no residual mix in the data"
        if missing is not None:
            why = f"no {missing.scheme} residual mix: {missing.reason}"
        if comb is not None:  # a generation-basis grid average, as a residual mix would be
            value, src, year_of = comb.intensity_g_per_kwh, comb.source, comb.year
        fallback = rp.MarketFactorRef(
            "grid_average" if missing is None else "no_residual_mix",
            f"grid average {location_code} ({why})", value, src, combustion.version if comb else None,
            "combustion" if comb else rp.factor_basis_of(src),
            comb.verification if comb else "as the locations dataset", year_of,
        )  # fmt: skip
    inst: Instrument | None = boundary.sites.get(site) if site else None
    if inst is None:
        return fallback, gap
    s = inst.covered_share
    if s >= 1.0:
        return rp.MarketFactorRef(
            "instrument", f"{inst.type} of site {inst.site} ({inst.year})", inst.rate_g_per_kwh, inst.source,
            None, "as entered by the account", "entered by the account", inst.year,
        ), None  # fmt: skip
    value = s * inst.rate_g_per_kwh + (1.0 - s) * fallback.intensity_g_per_kwh
    return rp.MarketFactorRef(
        "instrument",
        f"site {inst.site}: {s:.6g} covered by {inst.type} at {inst.rate_g_per_kwh:.6g} g/kWh, "
        f"{1 - s:.6g} at {fallback.label} {fallback.intensity_g_per_kwh:.6g} g/kWh",
        value, f"{inst.source}; remainder: {fallback.source}", fallback.dataset_version,
        "mixed (entered instrument + " + fallback.basis + ")",
        "entered by the account; remainder " + fallback.verification,
        inst.year,
    ), gap  # fmt: skip


def _job_defaults(factors: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []

    def src(name: str) -> str | None:
        f = factors.get(name)
        return f.get("source") if isinstance(f, Mapping) else None

    if float(inputs.get("cpu_cores") or 0) > 0:
        if src("cpu_power_per_core") == DEFAULT_CPU_W_PER_CORE.source:
            out.append("cpu_power_per_core: default 12 W/core (unknown CPU)")
        if src("cpu_utilization") == UTILIZATION_SOURCE_DEFAULT:
            out.append("cpu_utilization: default 1.0")
    if float(inputs.get("gpu_cores") or 0) > 0:
        if src("gpu_power") == DEFAULT_GPU_W.source:
            out.append("gpu_power: default 200 W (unknown GPU)")
        if src("gpu_utilization") == UTILIZATION_SOURCE_DEFAULT:
            out.append("gpu_utilization: default 1.0")
    if src("pue") == DEFAULT_PUE.source:
        out.append("pue: default 1.56 (unknown data centre)")
    return out


@dataclass(slots=True)
class _Ctx:
    """Reference data and memo tables of one compose run (records share few distinct values)."""

    group_by: str
    boundary: Boundary
    locations: LocationIndex
    mixes: ResidualMixes
    combustion: CombustionFactors
    job_methodology: str
    memo: dict[tuple[object, ...], Any] = field(default_factory=dict)
    instants: dict[datetime, str] = field(default_factory=dict)  # fast_instant memo


def compose(
    records: list[Record], start: datetime, end: datetime, group_by: str, boundary: Boundary,
    inference_site: Callable[[str, str], tuple[str, rp.EmissionFactorRef | None, str, dict[str, str]]],
    job_methodology: str,
) -> Composed:  # fmt: skip
    ctx = _Ctx(group_by, boundary, load_locations(), load_residual_mixes(), load_combustion_factors(), job_methodology)
    out = Composed()
    for rec in records:
        if not rec.in_period(start, end) or not rec.data or rec.occurred_at is None:
            continue
        if rec.status == ALTERED:  # no longer what was signed: never counted (listed as excluded, and a problem)
            continue
        if rec.kind == "job":
            _add_job(out, rec, ctx)
        else:
            _add_inference(out, rec, ctx, inference_site)
    out.rows = out.sums.rows()
    return out


def _late(rec: Record, boundary: Boundary) -> bool:
    if rec.occurred_at is None or rec.received_at is None:
        return False
    closed = boundary.closes.get(rec.occurred_at.year)
    if closed is None:
        return False
    from powermeter.methodology.occurrence import parse_instant

    return parse_instant(rec.received_at) > closed


def _place(out: Composed, rec: Record, entry: dict[str, Any], sum_key: tuple[object, ...],
           template: Callable[[], _Template], figures: _Figures,
           key: tuple[str, str, tuple[tuple[str, str], ...]], boundary: Boundary, coverage: str) -> None:  # fmt: skip
    entry["status"] = rec.status if rec.status != OK else "ok"
    if _late(rec, boundary):
        entry["late"] = True
        out.late.append(entry)
        return
    out.entries.append(entry)
    out.sums.add(sum_key, template, figures)
    out.keys.append(key)
    out.coverage.append(coverage)


def fast_instant(moment: datetime) -> str:
    """:func:`powermeter.methodology.occurrence.format_instant` through ``isoformat`` (C, no strftime):
    the same text for an aware datetime (microseconds only when non-zero)."""
    m = moment if moment.utcoffset() == _ZERO else moment.astimezone(UTC)
    return m.isoformat()[:-6] + "Z"


_ZERO = timedelta(0)


def _base(rec: Record, instants: dict[datetime, str]) -> dict[str, Any]:
    occurred = rec.occurred_at
    text: str | None = None
    if occurred:
        text = instants.get(occurred)
        if text is None:  # records share instants (a tree's jobs: issue time minus a few distinct durations)
            text = instants[occurred] = fast_instant(occurred)
    return {
        "kind": rec.kind,
        "id": rec.id,
        "tree_id": rec.tree_id,
        "leaf_index": rec.leaf_index,
        "record_sha256": rec.record_sha256,
        "occurred_at": text,
        "received_at": rec.received_at,
    }


def _versions(d: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (d or {}).items()))


def _job_group(ctx: _Ctx, out: Composed, month: str, location: str, inputs: Mapping[str, Any]) -> str:
    g = ctx.group_by
    if g == "month":
        return month
    if g == "location":
        out.labels.setdefault(location, _location_label(ctx.locations, location))
        return location
    if g == "provider":
        provider = inputs.get("provider")
        return str(provider).strip().lower() if provider else "(provider not given)"
    if g == "model":
        m = inputs.get("gpu_model") or inputs.get("cpu_model")
        return f"compute job: {m}" if m else "compute job: hardware not given"
    if g == "site":
        site = inputs.get("site")
        return str(site) if site else NO_SITE
    if g == "application":
        app = inputs.get("application")
        return str(app) if app else NO_APP
    return NO_KEY_GROUP


def _job_static(
    ctx: _Ctx, location: str, ci: Mapping[str, Any], year: int
) -> tuple[rp.EmissionFactorRef, str, rp.CombustionFactorRef | None, int | None, int | None]:
    """Per (location, factor, activity year): the factor ref, its basis, the paired combustion factor
    and the vintage gap of the location factor."""
    loc = ctx.locations.resolve(location)
    factor = rp.EmissionFactorRef(
        location,
        ci.get("value"),
        ci.get("source"),
        ci.get("dataset_version"),
        loc.year if loc is not None and ci.get("value") == loc.intensity_g_per_kwh else None,
    )
    basis = basis_of(ci.get("source"))
    comb_ref: rp.CombustionFactorRef | None = None
    if basis == "lifecycle" and loc is not None and ci.get("value") == loc.intensity_g_per_kwh:
        c = ctx.combustion.lookup(loc.code, year)
        if c is not None:
            comb_ref = rp.CombustionFactorRef(
                loc.code,
                c.intensity_g_per_kwh,
                c.year,
                c.source,
                ctx.combustion.version,
                loc.intensity_g_per_kwh,
                c.verification,
            )
    gap = (year - loc.year) if loc is not None else None
    return factor, basis, comb_ref, loc.year if loc is not None else None, gap


@dataclass(frozen=True, slots=True)
class _JobProfile:
    """Everything of a job entry that depends only on its factor profile, tags and activity year."""

    category: str
    factor: rp.EmissionFactorRef
    basis: str
    combustion: rp.CombustionFactorRef | None
    gap: int | None
    versions: tuple[tuple[str, str], ...]
    with_defaults: bool
    assumptions_id: str
    market: rp.MarketFactorRef | None
    market_gap: int | None


def _job_profile(out: Composed, ctx: _Ctx, d: Mapping[str, Any], inputs: Mapping[str, Any], year: int,
                 cpu: bool, gpu: bool) -> _JobProfile:  # fmt: skip
    factors: Mapping[str, Any] = d["factors"]
    location = str(d["location"])
    category, why = rp.classify_job(inputs.get("ownership"), inputs.get("provider"), _flag(inputs.get("own_hardware")))
    ci = factors.get("carbon_intensity") or {}
    factor, basis, comb, _loc_year, gap = _job_static(ctx, location, ci, year)
    versions = _versions(d.get("dataset_versions"))
    for name, v in versions:
        out.datasets.setdefault((name, v), set()).add("compute-job receipts")
    defaults = _job_defaults(factors, {"cpu_cores": 1 if cpu else 0, "gpu_cores": 1 if gpu else 0})
    pue = (factors.get("pue") or {}).get("value")
    aid = out.assumption_id(why, defaults, list(d.get("warnings") or ()), {"pue": pue})
    mref: rp.MarketFactorRef | None = None
    mgap: int | None = None
    if category == rp.SCOPE2.code:
        site = inputs.get("site")
        mref, mgap = market_factor(
            location,
            site if isinstance(site, str) else None,
            year,
            ctx.boundary,
            ctx.mixes,
            ctx.locations,
            ctx.combustion,
        )
        out.datasets.setdefault(("residual_mixes", ctx.mixes.version), set()).add("market-based Scope 2")
    if comb is not None and category in (rp.SCOPE2.code, rp.UNCLASSIFIED.code):
        out.datasets.setdefault(("combustion_factors", ctx.combustion.version), set()).add(
            "Scope 2 generation / Scope 3 Category 3 split"
        )
    else:
        comb = None
    return _JobProfile(category, factor, basis, comb, gap, versions, bool(defaults), aid, mref, mgap)


def _add_job(out: Composed, rec: Record, ctx: _Ctx) -> None:
    d = rec.data
    inputs: dict[str, Any] = d["inputs"]
    occurred = rec.occurred_at
    if occurred is None:  # pragma: no cover - compose() keeps only dated records
        return
    year = occurred.year
    month = f"{year:04d}-{occurred.month:02d}"
    location = str(d["location"])
    cpu, gpu = float(inputs.get("cpu_cores") or 0) > 0, float(inputs.get("gpu_cores") or 0) > 0
    own, provider, site = inputs.get("ownership"), inputs.get("provider"), inputs.get("site")
    key = (id(d["factors"]), id(d.get("dataset_versions")), id(d.get("warnings")), location, year, cpu, gpu, own,
           provider, inputs.get("own_hardware"), site)  # fmt: skip
    p: _JobProfile | None = ctx.memo.get(key)
    if p is None:
        p = ctx.memo[key] = _job_profile(out, ctx, d, inputs, year, cpu, gpu)
    group = month if ctx.group_by == "month" else _job_group(ctx, out, month, location, inputs)
    kwh, co2 = float(d["energy_kwh"]), float(d["co2e_g"])
    quality: dict[str, Any] = {"estimated": True, "assumptions_id": p.assumptions_id}
    entry = {
        **_base(rec, ctx.instants),
        "category": p.category,
        "ownership": own,
        "provider": provider,
        "site": site,
        "application": inputs.get("application"),
        "location": location,
        "energy_kwh": kwh,
        "co2e_g": co2,
        "co2e_usage_g": co2,
        "co2e_embodied_g": 0.0,
        "quality": quality,
    }
    market_g: float | None = None
    if p.market is not None:
        market_g = kwh * p.market.intensity_g_per_kwh
        entry["market"] = {"co2e_g": market_g, "hierarchy_level": p.market.level}
        if p.market_gap is not None:
            quality["residual_mix_vintage_gap_years"] = p.market_gap
    generation: float | None = None
    upstream = 0.0
    if p.combustion is not None:
        generation = kwh * p.combustion.intensity_g_per_kwh
        upstream = co2 - generation
        entry["upstream"] = {"generation_co2e_g": generation, "upstream_co2e_g": upstream, "_comb": p.combustion}
    out.inputs[rec.id] = inputs
    figures: _Figures = (1, kwh, co2, 0.0, 0, 0.0, 1 if p.with_defaults else 0, 1, 0, upstream, None, None, market_g,
                         generation)  # fmt: skip

    def template() -> _Template:
        return (rp.KIND_JOB, month, group, p.category == rp.SCOPE2.code, p.factor, ctx.job_methodology,
                p.category, p.market, p.basis, p.combustion, p.versions, p.gap)  # fmt: skip

    entry["_factor"] = p.factor
    entry["_market"] = p.market
    _place(out, rec, entry, (id(p), month, group), template, figures, (group, p.category, p.versions), ctx.boundary,
           f"job:{rec.id}:{rec.record_sha256}")  # fmt: skip


def _flag(v: Any) -> str | None:
    if v is None:
        return None
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _add_inference(
    out: Composed, rec: Record, ctx: _Ctx,
    inference_site: Callable[[str, str], tuple[str, rp.EmissionFactorRef | None, str, dict[str, str]]],
) -> None:  # fmt: skip
    group_by, boundary, locations = ctx.group_by, ctx.boundary, ctx.locations
    d = rec.data
    details = d["details"]
    if rec.occurred_at is None:  # pragma: no cover - compose() keeps only dated records
        return
    month = rec.occurred_at.strftime("%Y-%m")
    location, factor, version, meth = inference_site(
        orjson.dumps(details).decode(), f"{d['final_provider']}:{d['final_region']}"
    )
    for name, v in meth.items():
        out.datasets.setdefault((name, v), set()).add("AI inference records")
    app = d.get("application")
    if group_by == "month":
        group = month
    elif group_by == "location":
        group = location
        out.labels.setdefault(group, _location_label(locations, location))
    elif group_by == "provider":
        group = str(d["provider"]).lower()
        out.labels.setdefault(group, str(d["provider"]))
    elif group_by == "model":
        group = str(d["model_id"])
    elif group_by == "site":
        group = NO_SITE
    elif group_by == "application":
        group = str(app) if app else NO_APP
    else:
        group = str(d["key_id"])
        out.labels.setdefault(group, str(d["key_label"]))
    energy_kwh = float(d["energy_wh"]) / 1000.0
    co2 = float(d["co2_grams"])
    usage = float(d["co2_usage_grams"] or 0.0)
    emb = float(d["co2_embodied_grams"] or 0.0)
    model = details.get("model") or {}
    defaults: list[str] = []
    if d.get("calculation_method") != "EXACT_REGION":
        defaults.append(f"siting: {str(d.get('calculation_method')).lower().replace('_', ' ')}")
    if model.get("match") not in (None, "exact", "alias"):
        defaults.append(f"model resolved by {model.get('match')} (confidence {model.get('confidence')})")
    if d.get("is_estimated"):
        defaults.append("estimated token counts")
    lo = d.get("co2_min_grams")
    hi = d.get("co2_max_grams")
    entry = {
        **_base(rec, ctx.instants),
        "category": rp.SCOPE3_CAT1.code,
        "provider": d["provider"],
        "model_id": d["model_id"],
        "application": app,
        "location": location,
        "energy_kwh": energy_kwh,
        "co2e_g": co2,
        "co2e_usage_g": usage,
        "co2e_embodied_g": emb,
        "co2e_min_g": float(lo) if lo is not None else co2,
        "co2e_max_g": float(hi) if hi is not None else co2,
        "water_ml": float(d["water_ml"]),
        "quality": {
            "estimated": True,
            "assumptions_id": out.assumption_id(
                "AI inference service (purchased)", defaults, list(details.get("warnings") or ())
            ),
        },
    }
    versions = _versions(meth)
    basis = basis_of(factor.source if factor is not None else None)
    figures: _Figures = (1, energy_kwh, co2, float(d["water_ml"]), 1, emb, 1 if defaults else 0, 1, 0, 0.0,
                         entry["co2e_min_g"], entry["co2e_max_g"], None, None)  # fmt: skip
    template: _Template = (rp.KIND_INFERENCE, month, group, False, factor, version, rp.SCOPE3_CAT1.code, None, basis,
                           None, versions, None)  # fmt: skip
    entry["_factor"] = factor
    entry["_market"] = None
    stamp = rec.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    cov = rp.inference_record_sha256(
        rec.id, stamp, str(d["provider"]), str(d["model_id"]), float(d["energy_wh"]), co2, float(d["water_ml"])
    )
    _place(out, rec, entry, template, lambda: template, figures, (group, rp.SCOPE3_CAT1.code, versions), boundary,
           f"inference:{rec.id}:{cov}")  # fmt: skip
