"""From the ledger's records to report entries and lines.

Each in-period record becomes one *entry* carrying its figures (energy, CO2e usage and embodied,
min/max, market-based CO2e for Scope 2), the factors applied, its GHG bucket, tags and data-quality
notes, and the index of the report line it is summed into. Records that arrived after their year was
closed are *late arrivals*: listed with their figures, never added to the lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from powermeter.data.locations import LocationIndex, load_locations
from powermeter.data.residual_mixes import ResidualMixes, load_residual_mixes
from powermeter.methodology import reporting as rp
from powermeter.methodology.compute_job import (
    DEFAULT_CPU_W_PER_CORE,
    DEFAULT_GPU_W,
    DEFAULT_PUE,
    UTILIZATION_SOURCE_DEFAULT,
)
from powermeter.methodology.occurrence import format_instant
from powermeter.reports.boundary import Boundary, Instrument
from powermeter.reports.ledger import ALTERED, OK, Record

NO_KEY_GROUP = "(key not recorded)"
NO_SITE = "(site not given)"
NO_APP = "(application not given)"


@dataclass(slots=True)
class Composed:
    entries: list[dict[str, Any]] = field(default_factory=list)
    rows: list[rp.AggregateRow] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (group, category) of each entry
    late: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    datasets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    coverage: list[str] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job receipt id → its signed inputs


def _location_label(locations: LocationIndex, code: str) -> str:
    loc = locations.resolve(code)
    return code if loc is None else f"{loc.name} ({loc.code})"


def market_factor(
    location_code: str, site: str | None, year: int, boundary: Boundary, mixes: ResidualMixes,
    locations: LocationIndex,
) -> tuple[rp.MarketFactorRef, int | None]:  # fmt: skip
    """The market-based factor of a Scope 2 record (GHG Protocol Scope 2 Guidance hierarchy):
    the site's instrument for its covered share, the rest at the country's residual mix, else at the
    grid average (labelled). Returns the factor and the residual mix's vintage gap in years."""
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
        fallback = rp.MarketFactorRef(
            "grid_average", f"grid average {location_code} (no residual mix in the data)", value, src,
            None, rp.factor_basis_of(src), "as the locations dataset", loc.year if loc is not None else None,
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


def compose(
    records: list[Record], start: datetime, end: datetime, group_by: str, boundary: Boundary,
    inference_site: Callable[[str, str], tuple[str, rp.EmissionFactorRef | None, str, dict[str, str]]],
    job_methodology: str,
) -> Composed:  # fmt: skip
    locations = load_locations()
    mixes = load_residual_mixes()
    out = Composed()
    for rec in records:
        if not rec.in_period(start, end) or not rec.data or rec.occurred_at is None:
            continue
        if rec.status == ALTERED:  # no longer what was signed: never counted (listed as excluded, and a problem)
            continue
        if rec.kind == "job":
            _add_job(out, rec, group_by, boundary, locations, mixes, job_methodology)
        else:
            _add_inference(out, rec, group_by, boundary, locations, inference_site)
    return out


def _late(rec: Record, boundary: Boundary) -> bool:
    if rec.occurred_at is None or rec.received_at is None:
        return False
    closed = boundary.closes.get(rec.occurred_at.year)
    if closed is None:
        return False
    from powermeter.methodology.occurrence import parse_instant

    return parse_instant(rec.received_at) > closed


def _place(out: Composed, rec: Record, entry: dict[str, Any], row: rp.AggregateRow, key: tuple[str, str],
           boundary: Boundary, coverage: str) -> None:  # fmt: skip
    entry["status"] = rec.status if rec.status != OK else "ok"
    if _late(rec, boundary):
        entry["late"] = True
        out.late.append(entry)
        return
    out.entries.append(entry)
    out.rows.append(row)
    out.keys.append(key)
    out.coverage.append(coverage)


def _base(rec: Record) -> dict[str, Any]:
    return {
        "kind": rec.kind,
        "id": rec.id,
        "tree_id": rec.tree_id,
        "leaf_index": rec.leaf_index,
        "record_sha256": rec.record_sha256,
        "occurred_at": format_instant(rec.occurred_at) if rec.occurred_at else None,
        "received_at": rec.received_at,
    }


def _add_job(out: Composed, rec: Record, group_by: str, boundary: Boundary, locations: LocationIndex,
             mixes: ResidualMixes, job_methodology: str) -> None:  # fmt: skip
    d = rec.data
    inputs: dict[str, Any] = d["inputs"]
    factors: dict[str, Any] = d["factors"]
    if rec.occurred_at is None:  # pragma: no cover - compose() keeps only dated records
        return
    month = rec.occurred_at.strftime("%Y-%m")
    location = str(d["location"])
    provider = inputs.get("provider")
    site = inputs.get("site")
    app = inputs.get("application")
    category, why = rp.classify_job(inputs.get("ownership"), provider, _flag(inputs.get("own_hardware")))
    if group_by == "month":
        group = month
    elif group_by == "location":
        group = location
        out.labels.setdefault(group, _location_label(locations, location))
    elif group_by == "provider":
        group = str(provider).strip().lower() if provider else "(provider not given)"
    elif group_by == "model":
        m = inputs.get("gpu_model") or inputs.get("cpu_model")
        group = f"compute job: {m}" if m else "compute job: hardware not given"
    elif group_by == "site":
        group = str(site) if site else NO_SITE
    elif group_by == "application":
        group = str(app) if app else NO_APP
    else:
        group = NO_KEY_GROUP
    ci = factors.get("carbon_intensity") or {}
    factor = rp.EmissionFactorRef(location, ci.get("value"), ci.get("source"), ci.get("dataset_version"))
    for name, v in (d.get("dataset_versions") or {}).items():
        out.datasets.setdefault((str(name), str(v)), set()).add("compute-job receipts")
    kwh, co2 = float(d["energy_kwh"]), float(d["co2e_g"])
    defaults = _job_defaults(factors, inputs)
    loc = locations.resolve(location)
    year = rec.occurred_at.year
    quality: dict[str, Any] = {
        "estimated": True,
        "defaults": defaults,
        "warnings": list(d.get("warnings") or ()),
        "location_factor_year": loc.year if loc is not None else None,
        "location_factor_vintage_gap_years": (year - loc.year) if loc is not None else None,
    }
    market: dict[str, Any] | None = None
    mref: rp.MarketFactorRef | None = None
    if category == rp.SCOPE2.code:
        mref, gap = market_factor(location, site if isinstance(site, str) else None, year, boundary, mixes, locations)
        market = {"co2e_g": kwh * mref.intensity_g_per_kwh, "hierarchy_level": mref.level}
        if gap is not None:
            quality["residual_mix_vintage_gap_years"] = gap
        out.datasets.setdefault(("residual_mixes", mixes.version), set()).add("market-based Scope 2")
    entry = {
        **_base(rec),
        "category": category,
        "classification": why,
        "ownership": inputs.get("ownership"),
        "provider": provider,
        "site": site,
        "application": app,
        "location": location,
        "energy_kwh": kwh,
        "co2e_g": co2,
        "co2e_usage_g": co2,
        "co2e_embodied_g": 0.0,
        "co2e_min_g": co2,
        "co2e_max_g": co2,
        "factor": {"carbon_intensity_g_per_kwh": ci.get("value"), "pue": (factors.get("pue") or {}).get("value")},
        "quality": quality,
        "dataset_versions": dict(d.get("dataset_versions") or {}),
    }
    out.inputs[rec.id] = inputs
    if market is not None and mref is not None:
        entry["market"] = market
    row = rp.AggregateRow(
        rp.KIND_JOB, month, group, category == rp.SCOPE2.code, factor, job_methodology, 1, kwh, co2,
        category=category, market_co2e_g=market["co2e_g"] if market else None, market_factor=mref,
        records_with_defaults=1 if defaults else 0, estimated_records=1,
    )  # fmt: skip
    entry["_factor"] = factor
    entry["_market"] = mref
    _place(out, rec, entry, row, (group, category), boundary, f"job:{rec.id}:{rec.record_sha256}")


def _flag(v: Any) -> str | None:
    if v is None:
        return None
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _add_inference(
    out: Composed, rec: Record, group_by: str, boundary: Boundary, locations: LocationIndex,
    inference_site: Callable[[str, str], tuple[str, rp.EmissionFactorRef | None, str, dict[str, str]]],
) -> None:  # fmt: skip
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
        **_base(rec),
        "category": rp.SCOPE3_CAT1.code,
        "classification": "AI inference service (purchased)",
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
        "quality": {"estimated": True, "defaults": defaults, "warnings": list(details.get("warnings") or ())},
        "dataset_versions": dict(meth),
    }
    row = rp.AggregateRow(
        rp.KIND_INFERENCE, month, group, False, factor, version, 1, energy_kwh, co2, float(d["water_ml"]), 1,
        category=rp.SCOPE3_CAT1.code, co2e_embodied_g=emb, co2e_min_g=entry["co2e_min_g"],
        co2e_max_g=entry["co2e_max_g"], records_with_defaults=1 if defaults else 0, estimated_records=1,
    )  # fmt: skip
    entry["_factor"] = factor
    entry["_market"] = None
    stamp = rec.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    cov = rp.inference_record_sha256(rec.id, stamp, str(d["provider"]), str(d["model_id"]), float(d["energy_wh"]), co2,
                                  float(d["water_ml"]))
    _place(out, rec, entry, row, (group, rp.SCOPE3_CAT1.code), boundary, f"inference:{rec.id}:{cov}")
