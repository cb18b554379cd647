"""Region rates and named tariffs: loader, lookups and the OpenEI URDB import parser.

Files (``powermeter/data/rates/``):

* ``regions.csv`` – one row per region code (ISO 3166-1 / 3166-2: ``US-CA``, ``GB``, ``CA-ON``):
  currency, IANA time zone, average flat price with its basis, period, source and effective date,
  an optional fixed daily charge and the code of a default TOU/block tariff.
* ``tariffs.json`` – named tariffs (utility + plan) with TOU tiers, seasons, blocks, fixed charges,
  holiday treatment, source and effective date; shapes follow :func:`tariff.parse_rate_config`.

The dataset version is the content hash of both files. Everything is validated and compiled once,
at load time; lookups are dictionary reads.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.tariff import (
    DAYS_PER_TYPICAL_MONTH,
    DAYS_PER_TYPICAL_YEAR,
    CompiledRate,
    RateSpec,
    TariffInputError,
    compile_rate,
    parse_rate_config,
)

REGIONS_FILE = data_path("rates", "regions.csv")
TARIFFS_FILE = data_path("rates", "tariffs.json")

_RATE_KEYS = (
    "flat_rate",
    "currency",
    "tou_tiers",
    "seasons",
    "fixed_daily_charge",
    "block_tiers",
    "block_basis",
    "timezone",
)


class RatesDataError(ValueError):
    """The shipped (or imported) rate data is inconsistent."""


@dataclass(frozen=True, slots=True)
class TariffRecord:
    id: str
    region: str
    utility: str
    plan: str
    name: str
    currency: str
    timezone: str
    effective_date: date
    source: str
    source_url: str
    holidays_calendar: str | None
    notes: tuple[str, ...]
    raw: Mapping[str, Any]
    spec: RateSpec
    origin: str = "dataset"  # "dataset" or "urdb-import"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "region": self.region,
            "utility": self.utility,
            "plan": self.plan,
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
            "effective_date": self.effective_date.isoformat(),
            "source": self.source,
            "source_url": self.source_url,
            "origin": self.origin,
        }
        for key in ("seasons", "tou_tiers", "block_basis", "block_tiers", "fixed_daily_charge", "flat_rate"):
            if key in self.raw and self.raw[key] not in (None, [], {}):
                out[key] = _jsonable(self.raw[key], key)
        if self.holidays_calendar:
            out["holidays"] = {"calendar": self.holidays_calendar, "treatment": "weekend"}
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True, slots=True)
class RegionRecord:
    code: str
    name: str
    country: str
    currency: str
    timezone: str
    flat_rate: Decimal | None
    rate_basis: str
    period: str
    year: int
    effective_date: date
    fixed_daily_charge: Decimal
    default_tariff: str | None
    source: str
    source_url: str
    verified: str  # "true" (checked against the source) or "approximate"
    stale: bool = False  # older than STALE_BEFORE_YEAR and no newer sourced figure found
    stale_note: str = ""
    tariff_ids: tuple[str, ...] = ()

    def slim(self) -> dict[str, Any]:
        return {
            "regionCode": self.code,
            "name": self.name,
            "country": self.country,
            "currency": self.currency,
            "flat_rate": None if self.flat_rate is None else float(self.flat_rate),
            "year": self.year,
            "stale": self.stale,
            "has_tou": self.default_tariff is not None,
            "tariffs": list(self.tariff_ids),
        }


@dataclass(frozen=True, slots=True)
class ResolvedRate:
    region: RegionRecord | None
    tariff: TariffRecord | None
    rate: CompiledRate
    tz: ZoneInfo


@dataclass
class RatesDataset:
    regions: dict[str, RegionRecord]
    tariffs: dict[str, TariffRecord]
    version: str
    _compiled: dict[tuple[str, str | None], ResolvedRate] = field(default_factory=dict)

    # -- lookups ----------------------------------------------------------------------------

    def region(self, code: str) -> RegionRecord | None:
        return self.regions.get(code.strip().upper())

    def resolve(self, region_code: str, tariff_id: str | None = None) -> ResolvedRate | None:
        """The compiled rate for a region (its default tariff, or ``tariff_id``); ``None`` if unknown.

        The region's average flat price answers flat-mode requests; the tariff's TOU tiers, blocks
        and fixed charge answer scheduled requests.
        """
        key = (region_code.strip().upper(), tariff_id)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        region = self.regions.get(key[0])
        if region is None:
            return None
        tid = tariff_id if tariff_id is not None else region.default_tariff
        tariff = None
        if tid is not None:
            tariff = self.tariffs.get(tid)
            if tariff is None or tariff.region != region.code:
                return None
        resolved = ResolvedRate(region, tariff, _compile_region(region, tariff), ZoneInfo(region.timezone))
        self._compiled[key] = resolved
        return resolved

    def index(self) -> list[dict[str, Any]]:
        return [r.slim() for r in sorted(self.regions.values(), key=lambda r: r.code)]

    def region_detail(self, code: str) -> dict[str, Any] | None:
        resolved = self.resolve(code)
        if resolved is None or resolved.region is None:
            return None
        r = resolved.region
        default = resolved.tariff
        return {
            "regionCode": r.code,
            "name": r.name,
            "country": r.country,
            "currency": r.currency,
            "timezone": r.timezone,
            "flat_rate": None if r.flat_rate is None else float(r.flat_rate),
            "flat_rate_basis": r.rate_basis,
            "period": r.period,
            "year": r.year,
            "effective_date": r.effective_date.isoformat(),
            "fixed_daily_charge": float(r.fixed_daily_charge) if r.fixed_daily_charge else None,
            "source": r.source,
            "source_url": r.source_url,
            "verified": r.verified == "true",
            "verification": "verified" if r.verified == "true" else r.verified,
            "stale": r.stale,
            "stale_note": r.stale_note or None,
            "default_tariff": None if default is None else default.id,
            "tou_tiers": [] if default is None else _jsonable(default.raw.get("tou_tiers", [])),
            "seasons": {} if default is None else _jsonable(default.raw.get("seasons", {})),
            "tariffs": [self.tariffs[t].as_dict() for t in r.tariff_ids],
            "dataset_version": self.version,
        }

    def with_tariffs(self, extra: Iterable[Mapping[str, Any]], origin: str = "urdb-import") -> RatesDataset:
        """A copy with extra tariffs (e.g. URDB imports stored in the database) merged in."""
        tariffs = dict(self.tariffs)
        for raw in extra:
            rec = tariff_record(raw, origin=origin)
            if rec.region not in self.regions:
                raise RatesDataError(f"tariff {rec.id}: unknown region {rec.region}")
            tariffs[rec.id] = rec
        return RatesDataset(_link(self.regions, tariffs), tariffs, self.version)


# ---------------------------------------------------------------------------------------------
# loading


#: Keys whose values are amounts: tariff files hold them as decimal strings (exact money); the
#: API returns them as JSON numbers, like the seed's ``rateConfig``.
_NUMERIC_KEYS = frozenset({"rate", "flat_rate", "fixed_daily_charge", "up_to_kwh", "start_hour", "end_hour", "price"})


def _jsonable(v: Any, key: str | None = None) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, str) and key in _NUMERIC_KEYS:
        return float(Decimal(v))
    if isinstance(v, Mapping):
        return {k: _jsonable(x, k) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x, key) for x in v]
    return v


def _rate_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {k: raw[k] for k in _RATE_KEYS if k in raw and raw[k] is not None}
    hol = raw.get("holidays")
    if isinstance(hol, Mapping) and hol.get("treatment") == "weekend":
        cfg["holidays_as_weekend"] = True
    return cfg


def tariff_record(raw: Mapping[str, Any], origin: str = "dataset") -> TariffRecord:
    """Validate one tariff mapping (dataset or imported) into a :class:`TariffRecord`."""
    tid = raw.get("id")
    if not isinstance(tid, str) or not tid:
        raise RatesDataError("tariff without id")
    for key in ("region", "utility", "plan", "currency", "timezone", "effective_date", "source"):
        if not raw.get(key):
            raise RatesDataError(f"tariff {tid}: missing {key}")
    try:
        ZoneInfo(str(raw["timezone"]))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RatesDataError(f"tariff {tid}: unknown time zone {raw['timezone']!r}") from exc
    try:
        spec = parse_rate_config(_rate_config(raw), field=f"tariffs[{tid}]")
        compile_rate(spec, field=f"tariffs[{tid}]")
    except TariffInputError as exc:
        raise RatesDataError(str(exc)) from exc
    hol = raw.get("holidays")
    return TariffRecord(
        id=tid,
        region=str(raw["region"]).upper(),
        utility=str(raw["utility"]),
        plan=str(raw["plan"]),
        name=str(raw.get("name") or f"{raw['utility']} {raw['plan']}"),
        currency=str(raw["currency"]).upper(),
        timezone=str(raw["timezone"]),
        effective_date=date.fromisoformat(str(raw["effective_date"])),
        source=str(raw["source"]),
        source_url=str(raw.get("source_url") or ""),
        holidays_calendar=str(hol["calendar"]) if isinstance(hol, Mapping) and hol.get("calendar") else None,
        notes=tuple(str(n) for n in raw.get("notes", [])),
        raw=dict(raw),
        spec=spec,
        origin=origin,
    )


def _region_record(row: Mapping[str, str]) -> RegionRecord:
    code = row["code"].strip().upper()
    try:
        ZoneInfo(row["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RatesDataError(f"region {code}: unknown time zone {row['timezone']!r}") from exc
    return RegionRecord(
        code=code,
        name=row["name"],
        country=row["country"],
        currency=row["currency"].upper(),
        timezone=row["timezone"],
        flat_rate=Decimal(row["flat_rate"]) if row["flat_rate"] else None,
        rate_basis=row["rate_basis"],
        period=row["period"],
        year=int(row["year"]),
        effective_date=date.fromisoformat(row["effective_date"]),
        fixed_daily_charge=Decimal(row["fixed_daily_charge"]) if row["fixed_daily_charge"] else Decimal(0),
        default_tariff=row["default_tariff"] or None,
        source=row["source"],
        source_url=row["source_url"],
        verified=row["verified"],
        stale=_stale(code, row),
        stale_note=(row.get("stale_note") or "").strip(),
    )


#: A flat rate whose period ends before this year must carry ``stale=true`` and a ``stale_note``
#: saying why no newer figure is used (issue 15: no silently old prices).
STALE_BEFORE_YEAR = 2024


def _stale(code: str, row: Mapping[str, str]) -> bool:
    flag = (row.get("stale") or "").strip().lower()
    if flag not in ("true", "false", ""):
        raise RatesDataError(f"region {code}: stale must be true or false, not {flag!r}")
    stale = flag == "true"
    explained = stale and bool((row.get("stale_note") or "").strip())
    if row["flat_rate"] and int(row["year"]) < STALE_BEFORE_YEAR and not explained:
        year = row["year"]
        raise RatesDataError(
            f"region {code}: flat rate of {year} is older than {STALE_BEFORE_YEAR}; replace it with a newer "
            "sourced figure, or mark the row stale=true with a stale_note"
        )
    return stale


def _link(regions: Mapping[str, RegionRecord], tariffs: Mapping[str, TariffRecord]) -> dict[str, RegionRecord]:
    by_region: dict[str, list[str]] = {}
    for t in sorted(tariffs.values(), key=lambda t: t.id):
        by_region.setdefault(t.region, []).append(t.id)
    out: dict[str, RegionRecord] = {}
    for code, r in regions.items():
        ids = tuple(by_region.get(code, []))
        out[code] = RegionRecord(**{**_asdict(r), "tariff_ids": ids})
    return out


def _asdict(r: RegionRecord) -> dict[str, Any]:
    return {f: getattr(r, f) for f in RegionRecord.__slots__}


def _compile_region(region: RegionRecord, tariff: TariffRecord | None) -> CompiledRate:
    if tariff is None:
        if region.flat_rate is None:
            raise RatesDataError(f"region {region.code}: no flat_rate and no default tariff")
        spec = RateSpec(
            currency=region.currency,
            flat_rate=region.flat_rate,
            fixed_daily_charge=region.fixed_daily_charge,
            timezone=region.timezone,
        )
    else:
        s = tariff.spec
        spec = RateSpec(
            currency=s.currency,
            flat_rate=s.flat_rate if s.flat_rate is not None else region.flat_rate,
            tou_tiers=s.tou_tiers,
            fixed_daily_charge=s.fixed_daily_charge or region.fixed_daily_charge,
            block_tiers=s.block_tiers,
            block_basis=s.block_basis,
            timezone=tariff.timezone,
            holidays_as_weekend=s.holidays_as_weekend,
        )
    return compile_rate(spec, field=f"regions[{region.code}]")


def load_rates_from(regions_path: Path, tariffs_path: Path) -> RatesDataset:
    with regions_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    regions: dict[str, RegionRecord] = {}
    for row in rows:
        rec = _region_record(row)
        if rec.code in regions:
            raise RatesDataError(f"duplicate region {rec.code}")
        regions[rec.code] = rec
    doc = json.loads(tariffs_path.read_text(encoding="utf-8"))
    tariffs: dict[str, TariffRecord] = {}
    for raw in doc["tariffs"]:
        rec_t = tariff_record(raw)
        if rec_t.id in tariffs:
            raise RatesDataError(f"duplicate tariff {rec_t.id}")
        region = regions.get(rec_t.region)
        if region is None:
            raise RatesDataError(f"tariff {rec_t.id}: unknown region {rec_t.region}")
        if region.currency != rec_t.currency:
            raise RatesDataError(f"tariff {rec_t.id}: currency {rec_t.currency} ≠ region {region.currency}")
        tariffs[rec_t.id] = rec_t
    for r in regions.values():
        if r.default_tariff is not None and r.default_tariff not in tariffs:
            raise RatesDataError(f"region {r.code}: unknown default tariff {r.default_tariff}")
    dataset = RatesDataset(_link(regions, tariffs), tariffs, content_version(regions_path, tariffs_path))
    for code in dataset.regions:  # compile every region now: fail at start-up, not per request
        dataset.resolve(code)
    return dataset


@lru_cache(maxsize=1)
def load_rates() -> RatesDataset:
    """The shipped rates dataset (validated, compiled and cached)."""
    return load_rates_from(REGIONS_FILE, TARIFFS_FILE)


# ---------------------------------------------------------------------------------------------
# OpenEI URDB import (pure: mapping in, tariff mapping out)

_URDB_BLOCK_UNITS = {"kwh": "month", "kwh daily": "day"}
_DEMAND_KEYS = ("demandratestructure", "flatdemandstructure", "coincidentratestructure")


class UrdbUnsupported(ValueError):
    """A URDB rate uses a feature the engine cannot price (it is refused, not mispriced)."""


def urdb_items(doc: Any) -> list[Mapping[str, Any]]:
    """The rate items of a URDB export: ``{"items": [...]}``, a list, or one rate object."""
    if isinstance(doc, Mapping) and isinstance(doc.get("items"), list):
        items = doc["items"]
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, Mapping):
        items = [doc]
    else:
        raise UrdbUnsupported("not a URDB export: expected an object with items, a list or one rate")
    return [i for i in items if isinstance(i, Mapping)]


def _price(tier: Mapping[str, Any]) -> Decimal:
    return Decimal(str(tier.get("rate", 0) or 0)) + Decimal(str(tier.get("adj", 0) or 0))


def _segments(row: Sequence[int]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    start = 0
    for h in range(1, 25):
        if h == 24 or row[h] != row[start]:
            out.append((start, h, row[start]))
            start = h
    return out


def _schedule(item: Mapping[str, Any], key: str) -> list[list[int]]:
    sched = item.get(key)
    if not isinstance(sched, list) or len(sched) != 12 or any(not isinstance(r, list) or len(r) != 24 for r in sched):
        raise UrdbUnsupported(f"{key} must be a 12 × 24 matrix of period indices")
    return [[int(x) for x in r] for r in sched]


def tariff_from_urdb(item: Mapping[str, Any], region: str | None = None, timezone: str | None = None) -> dict[str, Any]:
    """Convert one URDB (v3–v8) rate into this project's tariff mapping.

    * energy period price = ``rate + adj`` of its first tier; 0-based period indices;
    * the 12 × 24 weekday/weekend schedules become TOU tiers (``months`` per distinct pattern);
    * tiers inside periods become block tiers: ``max`` in ``kWh`` (monthly) or ``kWh daily``;
      ladders must be the same in every period (their extra price becomes the block ``adj``);
      ``kWh/kW`` units are refused;
    * ``fixedchargefirstmeter`` in $/day, $/month (× 12/365) or $/year (÷ 365) → fixed daily charge;
    * demand charges are not priced: they are listed in ``notes``.
    """
    label = str(item.get("label") or "")
    if not label:
        raise UrdbUnsupported("rate without label")
    structure = item.get("energyratestructure")
    if not isinstance(structure, list) or not structure:
        raise UrdbUnsupported(f"{label}: no energyratestructure (energy charges) to price")
    periods: list[list[Mapping[str, Any]]] = []
    for p in structure:
        if not isinstance(p, list) or not p or not all(isinstance(t, Mapping) for t in p):
            raise UrdbUnsupported(f"{label}: malformed energyratestructure")
        periods.append(p)
    base = [_price(p[0]) for p in periods]

    # block tiers
    blocks: list[dict[str, Any]] = []
    basis = "month"
    ladders = {len(p) for p in periods}
    if ladders != {1}:
        if len(ladders) != 1:
            raise UrdbUnsupported(f"{label}: periods have different numbers of tiers")
        first = periods[0]
        given = {str(t.get("unit") or "kWh").strip() for p in periods for t in p if t.get("max") is not None}
        units = {u.lower() for u in given}
        if len(units) > 1 or not units <= set(_URDB_BLOCK_UNITS):
            raise UrdbUnsupported(
                f"{label}: tier unit {', '.join(sorted(given))} is not supported (kWh or kWh daily only)"
            )
        basis = _URDB_BLOCK_UNITS[units.pop()] if units else "month"
        for k, t in enumerate(first):
            mx = t.get("max")
            adj = _price(t) - base[0]
            for j, p in enumerate(periods[1:], start=1):
                if p[k].get("max") != mx or _price(p[k]) - base[j] != adj:
                    raise UrdbUnsupported(f"{label}: tier ladders differ between periods")
            blocks.append({"up_to_kwh": None if mx is None else str(mx), "adj": str(adj)})
        if blocks[-1]["up_to_kwh"] is not None:
            blocks.append({"up_to_kwh": None, "adj": blocks[-1]["adj"]})

    # TOU tiers
    weekday = _schedule(item, "energyweekdayschedule")
    weekend = _schedule(item, "energyweekendschedule")
    for row in weekday + weekend:
        for idx in row:
            if not 0 <= idx < len(periods):
                raise UrdbUnsupported(f"{label}: schedule refers to period {idx}, which does not exist")
    labels = item.get("energytoulabels")
    names = [
        str(labels[i]) if isinstance(labels, list) and i < len(labels) and labels[i] else f"period {i}"
        for i in range(len(periods))
    ]
    used = {idx for row in weekday + weekend for idx in row}
    out: dict[str, Any] = {}
    if len({base[i] for i in used}) == 1:
        out["flat_rate"] = str(base[next(iter(used))])
    else:
        patterns: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
        for m in range(12):
            patterns.setdefault((tuple(weekday[m]), tuple(weekend[m])), []).append(m + 1)
        tiers: list[dict[str, Any]] = []
        for (wd, we), months in patterns.items():
            kinds = [("all", wd)] if wd == we else [("weekday", wd), ("weekend", we)]
            for kind, pattern in kinds:
                for s, e, idx in _segments(pattern):
                    tier: dict[str, Any] = {
                        "name": names[idx],
                        "start_hour": s,
                        "end_hour": e,
                        "rate": str(base[idx]),
                    }
                    if kind != "all":
                        tier["days"] = kind
                    if len(months) < 12:
                        tier["months"] = months
                    tiers.append(tier)
        out["tou_tiers"] = tiers
    if blocks:
        out["block_tiers"] = blocks
        out["block_basis"] = basis

    # fixed charge
    notes: list[str] = []
    fixed = item.get("fixedchargefirstmeter")
    if fixed:
        fixed_units = str(item.get("fixedchargeunits") or "$/month").strip().lower()
        amount = Decimal(str(fixed))
        if fixed_units == "$/day":
            daily = amount
        elif fixed_units == "$/month":
            daily = amount / DAYS_PER_TYPICAL_MONTH
        elif fixed_units == "$/year":
            daily = amount / DAYS_PER_TYPICAL_YEAR
        else:
            raise UrdbUnsupported(f"{label}: fixed charge unit {fixed_units!r} is not supported")
        out["fixed_daily_charge"] = str(daily)
        if fixed_units != "$/day":
            notes.append(f"Fixed charge {amount} {fixed_units} converted to a daily charge (× 12/365 per month).")
    if any(item.get(k) for k in _DEMAND_KEYS):
        notes.append("Demand charges ($/kW) in the URDB record are not priced.")
    if item.get("mincharge"):
        notes.append(f"Minimum charge {item.get('mincharge')} {item.get('minchargeunits', '')} is not modelled.")

    reg = region
    if reg is None:
        state = item.get("state")
        if isinstance(state, str) and len(state) == 2:
            reg = f"US-{state.upper()}"
    if reg is None:
        raise UrdbUnsupported(f"{label}: region unknown; pass a region code (e.g. US-CA)")
    start = item.get("startdate")
    if isinstance(start, int | float):
        effective = datetime.fromtimestamp(start, tz=UTC).date().isoformat()
    elif isinstance(start, str) and start:
        effective = start[:10]
    else:
        raise UrdbUnsupported(f"{label}: no startdate (effective date)")
    name = str(item.get("name") or label)
    utility = str(item.get("utility") or "unknown utility")
    out.update(
        {
            "id": f"urdb-{label}",
            "region": reg.upper(),
            "utility": utility,
            "plan": name,
            "name": f"{utility} {name}",
            "currency": "USD",
            "timezone": timezone or "",
            "effective_date": effective,
            "source": f"OpenEI Utility Rate Database, label {label}"
            + (f" ({item['source']})" if item.get("source") else ""),
            "source_url": str(item.get("uri") or f"https://apps.openei.org/USURDB/rate/view/{label}"),
            "notes": notes,
        }
    )
    return out


def import_urdb(doc: Any, dataset: RatesDataset, region: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Convert every rate in a URDB export; returns ``(tariffs, errors)``.

    Each tariff takes its region's time zone and is validated by compiling it; rates the engine
    cannot price are reported in ``errors`` instead of being imported approximately.
    """
    tariffs: list[dict[str, Any]] = []
    errors: list[str] = []
    for item in urdb_items(doc):
        try:
            t = tariff_from_urdb(item, region=region)
            reg = dataset.region(t["region"])
            if reg is None:
                raise UrdbUnsupported(f"{item.get('label')}: unknown region {t['region']}")
            t["timezone"] = reg.timezone
            t["currency"] = reg.currency
            tariff_record(t, origin="urdb-import")
            tariffs.append(t)
        except (UrdbUnsupported, RatesDataError, ArithmeticError, ValueError) as exc:
            errors.append(str(exc))
    return tariffs, errors


__all__ = [
    "REGIONS_FILE",
    "TARIFFS_FILE",
    "RatesDataError",
    "RatesDataset",
    "RegionRecord",
    "ResolvedRate",
    "TariffRecord",
    "UrdbUnsupported",
    "import_urdb",
    "load_rates",
    "load_rates_from",
    "tariff_from_urdb",
    "tariff_record",
    "urdb_items",
]
