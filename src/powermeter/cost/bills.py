"""Bills from meter readings (``POST /calc/api/bill``) and tariff comparison (``POST /calc/api/compare``).

Request → rate (``tariffId`` | ``rateConfig`` | ``regionCode``) + time zone + readings (JSON, CSV or ESPI
XML) → :func:`powermeter.methodology.billing.bill_readings` → seed-003-style response (money rounded
to 4 decimals only here; errors are ``{"error": "<field>: <problem>", "field": …}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from powermeter.cost.meter_files import MAX_READINGS, MeterData, MeterFileError, parse_meter_file
from powermeter.cost.service import compile_inline, holidays_in
from powermeter.data.rates import RatesDataset
from powermeter.infra.errors import ApiError, BadRequest, NotFound
from powermeter.methodology import tariff as t
from powermeter.methodology.billing import (
    ALLOWED_INTERVALS_MIN,
    Bill,
    BillingInputError,
    BillRate,
    MonthBill,
    Reading,
    bill_readings,
)
from powermeter.methodology.tariff import TariffInputError

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_KWH_PER_READING = Decimal(1_000_000)
MAX_EXPORT_RATE = Decimal(100)
METHOD = 'docs/methodology.md, section "Bills from meter readings"'
MAX_SPAN_DAYS = 1098  # three years (one of them leap)
BILL_ONLY_KEYS = ("export_rate", "fixed_monthly_charge")


class PayloadTooLarge(ApiError):
    status, code, slug = 413, "PAYLOAD_TOO_LARGE", "payload_too_large"


def _bad(field: str, message: str, **extra: Any) -> BadRequest:
    return BadRequest(f"{field}: {message}", extra={"field": field, **extra})


@dataclass(frozen=True, slots=True)
class ChosenRate:
    bill_rate: BillRate
    tz: ZoneInfo | None
    tariff_id: str | None
    region_code: str | None
    name: str | None
    source: str | None
    holidays_calendar: str | None
    dataset_version: str | None


# ---------------------------------------------------------------------------------------------
# inputs


def _str(params: Mapping[str, Any], *names: str) -> tuple[str, str | None]:
    for n in names:
        v = params.get(n)
        if v is not None:
            if not isinstance(v, str) or not v.strip() or len(v) > 200:
                raise _bad(n, "must be a non-empty string (at most 200 characters)")
            return n, v.strip()
    return names[0], None


def _decimal(
    params: Mapping[str, Any], name: str, lo: Decimal, hi: Decimal, field: str | None = None
) -> Decimal | None:
    v = params.get(name)
    if v is None:
        return None
    field = field or name
    try:
        d = t.dec(v, field)
    except TariffInputError as exc:
        raise _bad(field, exc.message) from None
    if not lo <= d <= hi:
        raise _bad(field, f"must be between {lo} and {hi}, got {d}")
    return d


def zone(name: str | None, field: str = "timezone") -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(field, f"unknown IANA time zone {name!r} (e.g. America/Los_Angeles)") from None


def interval_param(params: Mapping[str, Any]) -> int | None:
    v = params.get("interval_minutes", params.get("intervalMinutes"))
    if v is None:
        return None
    try:
        n = int(v) if isinstance(v, int | str) and not isinstance(v, bool) else None
    except ValueError:
        n = None
    if n not in ALLOWED_INTERVALS_MIN:
        raise _bad("interval_minutes", f"must be one of {', '.join(map(str, ALLOWED_INTERVALS_MIN))}, got {v!r}")
    return n


def _export_override(params: Mapping[str, Any]) -> Decimal | None:
    return _decimal(params, "export_rate", Decimal(0), MAX_EXPORT_RATE)


def choose(params: Mapping[str, Any], rates: RatesDataset) -> ChosenRate:
    """``tariffId`` (alone or with its ``regionCode``), ``rateConfig`` or ``regionCode`` (its default tariff)."""
    tid_name, tariff_id = _str(params, "tariffId", "tariff_id")
    reg_name, region = _str(params, "regionCode", "region_code")
    cfg = params.get("rateConfig", params.get("rate_config"))
    override = _export_override(params)
    given = [n for n, v in (("tariffId", tariff_id), ("rateConfig", cfg), ("regionCode", region)) if v is not None]
    if cfg is not None and len(given) > 1:
        raise _bad("rateConfig", f"give one of tariffId, rateConfig or regionCode, not {' and '.join(given)}")
    if cfg is not None:
        if isinstance(cfg, str):  # a JSON-encoded rateConfig in a query string
            try:
                cfg = orjson.loads(cfg)
            except orjson.JSONDecodeError:
                raise _bad("rateConfig", "must be a JSON object") from None
        if not isinstance(cfg, Mapping):
            raise _bad("rateConfig", "must be an object")
        engine_cfg = {k: v for k, v in cfg.items() if k not in BILL_ONLY_KEYS}
        try:
            rate = compile_inline(engine_cfg, "rateConfig")
        except ArithmeticError:  # decimal Overflow from absurd magnitudes (issue 14 bounds them upstream)
            raise _bad("rateConfig", "prices or charges are too large to bill; use realistic values") from None
        export = _decimal(cfg, "export_rate", Decimal(0), MAX_EXPORT_RATE, "rateConfig.export_rate")
        monthly = _decimal(
            cfg, "fixed_monthly_charge", Decimal(0), Decimal(1_000_000), "rateConfig.fixed_monthly_charge"
        ) or Decimal(0)
        cal = cfg.get("holidays_calendar")
        return ChosenRate(
            BillRate(rate, export if export is not None else override, monthly, "rateConfig.export_rate", "rateConfig"),
            zone(rate.spec.timezone, "rateConfig.timezone"),
            None,
            None,
            cfg.get("name") if isinstance(cfg.get("name"), str) else None,
            None,
            str(cal) if isinstance(cal, str) and cal else None,
            None,
        )
    if tariff_id is not None:
        rec = rates.tariffs.get(tariff_id)
        if rec is None:
            raise NotFound(
                f"unknown tariff {tariff_id!r}",
                slug="tariff_not_found",
                extra={"field": tid_name, "hint": "GET /calc/api/rates/{regionCode} lists tariffs"},
            )
        if region is not None and rates.region(region) is not None and rec.region != region.upper():
            raise _bad(reg_name, f"tariff {tariff_id!r} belongs to {rec.region}, not {region}")
        region = rec.region
    if region is None:
        raise _bad("tariffId", "give tariffId (e.g. 'pge-e-tou-c'), rateConfig (an inline rate) or regionCode")
    if rates.region(region) is None:
        raise NotFound(f"unknown region {region!r}", slug="region_not_found")
    resolved = rates.resolve(region, tariff_id)
    if resolved is None:
        raise NotFound(f"region {region!r} has no tariff {tariff_id!r}", slug="tariff_not_found")
    tar = resolved.tariff
    tariff_export: Decimal | None = None
    if tar is not None and tar.raw.get("export_rate") is not None:
        tariff_export = t.dec(tar.raw["export_rate"], f"tariffs[{tar.id}].export_rate")
    label = f"tariff {tar.id!r}" if tar else f"region {region}'s average rate"
    return ChosenRate(
        BillRate(
            resolved.rate, tariff_export if tariff_export is not None else override, Decimal(0), "export_rate", label
        ),
        resolved.tz,
        tar.id if tar else None,
        resolved.region.code if resolved.region else region,
        tar.name if tar else None,
        tar.source if tar else (resolved.region.source if resolved.region else None),
        tar.holidays_calendar if tar else None,
        rates.version,
    )


def _reading_error(i: int, r: Any) -> BadRequest:
    """The precise 400 for a reading the fast path refused."""
    where = f"readings[{i}]"
    if not isinstance(r, dict):
        return _bad(where, "must be an object {start, kwh}")
    s = r.get("start")
    if not isinstance(s, str) or len(s) > 40:
        return _bad(f"{where}.start", "is required: an ISO-8601 instant such as 2026-11-01T01:00:00-07:00")
    try:
        start = datetime.fromisoformat(s)
    except ValueError:
        return _bad(f"{where}.start", f"{s!r} is not an ISO-8601 date-time")
    if start.tzinfo is None:
        return _bad(f"{where}.start", f"{s!r} has no UTC offset; give an instant (…-07:00 or …Z)")
    k = r.get("kwh")
    if k is None or isinstance(k, bool | list | dict):
        return _bad(f"{where}.kwh", "is required: a number of kWh (negative = exported)")
    if isinstance(k, str):
        try:
            t.dec(k, "kwh")
        except TariffInputError:
            return _bad(f"{where}.kwh", f"{k!r} is not a number")
    return _bad(f"{where}.kwh", f"must be a finite number within ±{MAX_KWH_PER_READING:,} kWh, got {k!r}")


def json_readings(raw: Any) -> list[Reading]:
    """Validate ``readings: [{start, kwh}, …]`` (fast path for the common shape; errors name the reading)."""
    if not isinstance(raw, list) or not raw:
        raise _bad("readings", "must be a non-empty list of {start, kwh}")
    if len(raw) > MAX_READINGS:
        raise _bad("readings", f"at most {MAX_READINGS:,} readings per request, got {len(raw):,}")
    out: list[Reading] = []
    append = out.append
    new = tuple.__new__  # Reading(start, kwh, i) without the NamedTuple's Python-level __new__
    fromiso = datetime.fromisoformat
    lim = float(MAX_KWH_PER_READING)
    decimals: dict[float, Decimal] = {}  # meters repeat values: convert each distinct float once
    for i, r in enumerate(raw):
        try:
            start = fromiso(r["start"])
            k = r["kwh"]
        except (TypeError, KeyError, ValueError):
            raise _reading_error(i, r) from None
        kt = type(k)
        if start.tzinfo is None or (kt is not float and kt is not int) or not -lim <= k <= lim:
            if start.tzinfo is not None and kt is str:
                try:
                    kwh = t.dec(k, "kwh")
                except TariffInputError:
                    raise _reading_error(i, r) from None
                if abs(kwh) <= MAX_KWH_PER_READING:
                    append(Reading(start, kwh, i))
                    continue
            raise _reading_error(i, r)
        cached = decimals.get(k)  # 1 and 1.0 share an entry: both are exactly Decimal 1
        if cached is None:
            cached = decimals[k] = Decimal(repr(k)) if kt is float else Decimal(k)
        append(new(Reading, (start, cached, i)))
    return out


@dataclass
class Parsed:
    readings: list[Reading]
    interval_minutes: int | None
    format: str
    notes: list[str]
    ref_format: str = "line {}"


def readings_from(params: Mapping[str, Any], body: bytes | None, content_type: str, tz: ZoneInfo | None) -> Parsed:
    """Readings from the JSON body's ``readings`` or from a CSV/XML body."""
    interval = interval_param(params)
    if body is None:
        return Parsed(json_readings(params.get("readings")), interval, "json", [], "readings[{}]")
    try:
        data: MeterData = parse_meter_file(body, tz, content_type)
    except MeterFileError as exc:
        raise BadRequest(str(exc), extra={"field": "body", "line": exc.line}) from None
    return Parsed(data.readings, interval or data.interval_minutes, data.format, data.notes)


# ---------------------------------------------------------------------------------------------
# billing


def _m(x: Decimal) -> float:
    return float(t.round_money(x))


def run_bill(choice: ChosenRate, parsed: Parsed, tz: ZoneInfo) -> Bill:
    rs = parsed.readings
    if not rs:
        raise _bad("readings", "no readings")
    lo = min(r.start for r in rs).astimezone(tz).date()
    hi = max(r.start for r in rs).astimezone(tz).date()
    if (hi - lo).days + 1 > MAX_SPAN_DAYS:
        raise _bad("readings", f"may span at most {MAX_SPAN_DAYS} days, got {(hi - lo).days + 1} ({lo} to {hi})")
    try:
        return bill_readings(
            choice.bill_rate,
            rs,
            tz,
            interval_minutes=parsed.interval_minutes,
            holidays=holidays_in(choice.holidays_calendar, lo, hi),
            ref_format=parsed.ref_format,
        )
    except ArithmeticError:  # decimal Overflow/InvalidOperation from absurd rate magnitudes
        raise _bad("rateConfig", "prices or charges are too large to bill; use realistic values") from None
    except BillingInputError as exc:
        extra: dict[str, Any] = {}
        if exc.field.startswith("line ") and exc.field[5:].isdigit():
            extra["line"] = int(exc.field[5:])
        raise _bad(exc.field, exc.message, **extra) from None


def month_json(m: MonthBill) -> dict[str, Any]:
    out: dict[str, Any] = {
        "month": m.month,
        "start": m.start.isoformat(),
        "end": m.end.isoformat(),
        "days": m.days,
        "kwh": _m(m.kwh),
        "energy_cost": _m(m.energy_cost),
        "fixed_cost": _m(m.fixed_cost),
        "total": _m(m.total),
        "by_period": {n: {"kwh": _m(p.kwh), "cost": _m(p.cost)} for n, p in m.by_period.items()},
    }
    if m.export_kwh:
        out.update(import_kwh=_m(m.import_kwh), export_kwh=_m(m.export_kwh), export_credit=_m(m.export_credit))
    if m.blocks:
        out["blocks"] = [
            {"up_to_kwh": None if b.up_to_kwh is None else _m(b.up_to_kwh), "kwh": _m(b.kwh), "cost": _m(b.cost)}
            for b in m.blocks
        ]
    return out


def bill_json(b: Bill, choice: ChosenRate, parsed: Parsed) -> dict[str, Any]:
    export_kwh = sum((m.export_kwh for m in b.months), Decimal(0))
    out: dict[str, Any] = {
        "currency": b.currency,
        "total": _m(b.total),
        "kwh": _m(b.kwh),
        "energy_cost": _m(b.energy_cost),
        "fixed_cost": _m(b.fixed_cost),
        "months": [month_json(m) for m in b.months],
        "warnings": [
            {"code": w.code, "message": w.message, "count": w.count, "examples": list(w.examples)} for w in b.warnings
        ],
        "period": {
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "days": b.days,
            "timezone": b.timezone,
            "interval_minutes": b.interval_minutes,
            "interval_inferred": b.interval_inferred,
            "readings": b.readings,
            "covered_hours": _m(b.covered_hours),
        },
        "tariff": {
            "tariff_id": choice.tariff_id,
            "region_code": choice.region_code,
            "name": choice.name,
            "source": choice.source,
            "export_rate": None if choice.bill_rate.export_rate is None else float(choice.bill_rate.export_rate),
            "dataset_version": choice.dataset_version,
        },
        "input": {"format": parsed.format, "notes": parsed.notes},
        "method": METHOD,
    }
    if export_kwh:
        out["export_kwh"] = _m(export_kwh)
        out["export_credit"] = _m(sum((m.export_credit for m in b.months), Decimal(0)))
    return out


def _tz_for(params: Mapping[str, Any], choice: ChosenRate | None) -> ZoneInfo | None:
    _, name = _str(params, "timezone")
    explicit = zone(name)
    if explicit is not None:
        return explicit
    return choice.tz if choice else None


def _require_tz(tz: ZoneInfo | None) -> ZoneInfo:
    if tz is None:
        raise _bad("timezone", "required (an IANA name such as America/Los_Angeles) when the rate has none")
    return tz


def bill(params: Mapping[str, Any], body: bytes | None, content_type: str, rates: RatesDataset) -> dict[str, Any]:
    choice = choose(params, rates)
    tz = _tz_for(params, choice)
    parsed = readings_from(params, body, content_type, tz)
    b = run_bill(choice, parsed, _require_tz(tz))
    try:
        return bill_json(b, choice, parsed)
    except ArithmeticError:  # an amount beyond what 4-decimal rounding can represent
        raise _bad("rateConfig", "prices or charges are too large to bill; use realistic values") from None


# ---------------------------------------------------------------------------------------------
# compare


def compare(params: Mapping[str, Any], body: bytes | None, content_type: str, rates: RatesDataset) -> dict[str, Any]:
    reg_name, region_code = _str(params, "regionCode", "region_code")
    if region_code is None:
        raise _bad("regionCode", "is required (e.g. 'US-CA'); GET /calc/api/rates/index lists regions")
    region = rates.region(region_code)
    if region is None:
        raise NotFound(f"unknown region {region_code!r}", slug="region_not_found")
    if not region.tariff_ids:
        raise _bad(
            reg_name,
            f"region {region.code} has no named tariffs to compare; GET /calc/api/rates/index "
            "lists each region's tariffs",
        )
    cur_name, current = _str(params, "currentTariffId", "current_tariff_id")
    if current is not None and current not in region.tariff_ids:
        raise _bad(cur_name, f"{current!r} is not a tariff of {region.code}; one of {', '.join(region.tariff_ids)}")
    override = {"export_rate": params["export_rate"]} if params.get("export_rate") is not None else {}
    _, tz_name = _str(params, "timezone")
    tz = zone(tz_name) or ZoneInfo(region.timezone)
    parsed = readings_from(params, body, content_type, tz)
    priced: list[tuple[ChosenRate, Bill]] = []
    refused: list[dict[str, Any]] = []
    for tid in region.tariff_ids:
        choice = choose({"tariffId": tid, **override}, rates)
        try:
            priced.append((choice, run_bill(choice, parsed, tz)))
        except BadRequest as exc:
            if not exc.extra.get("field", "").endswith("export_rate"):
                raise
            refused.append({"tariffId": tid, "error": exc.detail})
    if not priced:
        raise _bad(
            "export_rate",
            "no tariff of this region has an export rate for the negative readings; give "
            "export_rate (price per exported kWh) to compare",
        )
    priced.sort(key=lambda cb: (cb[1].total, cb[0].tariff_id or ""))
    base = next((b for c, b in priced if c.tariff_id == current), None)
    first = priced[0][1]
    days = first.days
    full_year = days >= 365
    annualization = (
        f"the readings cover {days} days ({first.start} to {first.end}); per-year figures scale that period "
        + ("down to 365 days" if full_year else "up linearly to 365 days, which ignores seasons the readings miss")
    )
    ranked: list[dict[str, Any]] = []
    for rank, (c, b) in enumerate(priced, start=1):
        entry: dict[str, Any] = {
            "rank": rank,
            "tariffId": c.tariff_id,
            "name": c.name,
            "total": _m(b.total),
            "energy_cost": _m(b.energy_cost),
            "fixed_cost": _m(b.fixed_cost),
            "per_year": _m(b.annualized_total),
            "months": [{"month": m.month, "total": _m(m.total)} for m in b.months],
        }
        if base is not None:
            saving = base.total - b.total
            entry["savings_vs"] = {
                "tariffId": current,
                "period": _m(saving),
                "per_year": _m(saving * 365 / Decimal(days)),
            }
        ranked.append(entry)
    return {
        "regionCode": region.code,
        "currency": first.currency,
        "currentTariffId": current,
        "coverage": {
            "start": first.start.isoformat(),
            "end": first.end.isoformat(),
            "days": days,
            "readings": first.readings,
            "covered_hours": _m(first.covered_hours),
            "interval_minutes": first.interval_minutes,
            "timezone": first.timezone,
            "full_year": full_year,
            "annualization": annualization,
        },
        "tariffs": ranked,
        "not_priced": refused,
        "warnings": [
            {"code": w.code, "message": w.message, "count": w.count, "examples": list(w.examples)}
            for w in first.warnings
        ],
        "input": {"format": parsed.format, "notes": parsed.notes},
        "dataset_version": rates.version,
        "method": METHOD,
    }


def split_request(content_type: str, raw: bytes, query: Mapping[str, str]) -> tuple[dict[str, Any], bytes | None, str]:
    """(parameters, file body or None for JSON, media type) from a request."""
    ct = content_type.split(";")[0].strip().lower()
    stripped = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if ct in ("application/json", "") and stripped[:1] in (b"{", b""):
        if not stripped:
            raise _bad("body", "request body is required: JSON {readings: [...]}, a CSV or a Green Button XML file")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _bad("body", f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _bad("body", "request body must be a JSON object")
        params: dict[str, Any] = dict(query)
        params.update(body)
        return params, None, "application/json"
    if ct in ("text/csv", "application/csv", "text/plain", "application/xml", "text/xml", "application/atom+xml", ""):
        if not stripped:
            raise _bad("body", "the file is empty")
        return dict(query), raw, ct
    raise _bad("Content-Type", f"{ct!r} is not accepted; send application/json, text/csv or application/xml")


__all__ = ["MAX_BODY_BYTES", "PayloadTooLarge", "bill", "compare", "split_request"]
