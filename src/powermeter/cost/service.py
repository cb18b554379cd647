"""The public electricity-cost calculator (seed 003): request → tariff engine → seed-shaped response.

The HTTP layer stays thin: bodies are decoded once (orjson), validated by the engine's own parsers
(which name the offending field), rates come from the dataset compiled at start-up (inline
``rateConfig`` objects are compiled once and cached by their canonical JSON), and money is rounded
only here, at the edge.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from powermeter.cost import repository
from powermeter.data.rates import RatesDataset, load_rates
from powermeter.infra.db import Database
from powermeter.infra.errors import BadRequest, NotFound
from powermeter.methodology import tariff as t
from powermeter.methodology.tariff import CompiledRate, TariffInputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

REFRESH_S = 60.0
_CACHE_MAX = 512


# ---------------------------------------------------------------------------------------------
# rates dataset (+ tariffs imported from URDB into the database)


class RatesProvider:
    """The shipped dataset merged with imported tariffs; re-reads the import table at most every 60 s.

    The public calculator never waits on the database: when the data are due for a check, a background
    thread re-reads the import table and the request is answered from what is loaded. Authenticated
    routes pass their own connection and check inline (a cheap read inside their transaction).
    """

    def __init__(self, db: Database, base: RatesDataset | None = None) -> None:
        self._db = db
        self._base = base or load_rates()
        self._current = self._base
        self._stamp: tuple[int, str] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = False

    def _due(self) -> bool:
        return time.monotonic() - self._checked >= REFRESH_S

    def get(self) -> RatesDataset:
        if self._due() and not self._refreshing:
            with self._lock:
                if self._due() and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh_in_background, daemon=True).start()
        return self._current

    def get_with(self, conn: Connection) -> RatesDataset:
        if self._due():
            self.refresh(conn)
        return self._current

    def refresh_now(self) -> RatesDataset:
        with self._db.connect() as conn:
            self.refresh(conn)
        return self._current

    def _refresh_in_background(self) -> None:
        try:
            self.refresh_now()
        except Exception:  # a missing table or a database hiccup must not break the calculator
            self._checked = time.monotonic()
        finally:
            self._refreshing = False

    def refresh(self, conn: Connection) -> None:
        self._checked = time.monotonic()
        stamp = repository.import_stamp(conn)
        if stamp == self._stamp:
            return
        rows = repository.imported_tariff_data(conn)
        self._current = self._base.with_tariffs(rows) if rows else self._base
        self._stamp = stamp


# ---------------------------------------------------------------------------------------------
# request helpers


def bad(exc: TariffInputError) -> BadRequest:
    return BadRequest(f"{exc.field}: {exc.message}", extra={"field": exc.field})


def decode_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise BadRequest("request body is required (a JSON object)", extra={"field": "body"})
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", extra={"field": "body"}) from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", extra={"field": "body"})
    return body


def _pick(body: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    for n in names:
        if body.get(n) is not None:
            return n, body[n]
    return names[0], None


def money(x: Decimal) -> float:
    try:
        return float(t.round_money(x))
    except InvalidOperation:  # a backstop: the inputs' bounds (tariff.INPUT_BOUNDS) keep results in range
        raise BadRequest(
            "body: a result is out of range; the inputs' allowed ranges are in docs/methodology.md (Input bounds)",
            extra={"field": "body"},
        ) from None


@dataclass(frozen=True, slots=True)
class RateChoice:
    rate: CompiledRate
    tz: ZoneInfo | None
    region_code: str | None
    tariff_id: str | None
    holidays_calendar: str | None
    dataset_version: str | None


_compiled: OrderedDict[bytes, CompiledRate] = OrderedDict()
_compiled_lock = threading.Lock()


def compile_inline(cfg: Any, field: str) -> CompiledRate:
    """Compile an inline ``rateConfig`` once; later identical configs are a dictionary hit."""
    if not isinstance(cfg, Mapping):
        raise BadRequest(f"{field}: must be an object", extra={"field": field})
    key = orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS)
    hit = _compiled.get(key)
    if hit is not None:
        return hit
    try:
        rate = t.compile_rate(t.parse_rate_config(cfg, field), field)
    except TariffInputError as exc:
        raise bad(exc) from None
    with _compiled_lock:
        _compiled[key] = rate
        while len(_compiled) > _CACHE_MAX:
            _compiled.popitem(last=False)
    return rate


def choose_rate(body: Mapping[str, Any], rates: RatesDataset, *, required: bool = True) -> RateChoice | None:
    """``rateConfig`` (inline) or ``regionCode`` (dataset lookup; optional ``tariffId``)."""
    cfg_name, cfg = _pick(body, "rateConfig", "rate_config")
    reg_name, region = _pick(body, "regionCode", "region_code")
    _, tariff_id = _pick(body, "tariffId", "tariff_id")
    if cfg is not None and region is not None:
        raise BadRequest(f"{cfg_name}: give {cfg_name} or {reg_name}, not both", extra={"field": cfg_name})
    if cfg is not None:
        rate = compile_inline(cfg, cfg_name)
        tz = None
        if rate.spec.timezone:
            try:
                tz = ZoneInfo(rate.spec.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise BadRequest(
                    f"{cfg_name}.timezone: unknown IANA time zone {rate.spec.timezone!r}",
                    extra={"field": f"{cfg_name}.timezone"},
                ) from None
        cal = cfg.get("holidays_calendar") if isinstance(cfg, Mapping) else None
        return RateChoice(rate, tz, None, None, str(cal) if cal else None, None)
    if region is not None:
        if not isinstance(region, str):
            raise BadRequest(f"{reg_name}: must be a string such as 'US-CA'", extra={"field": reg_name})
        if tariff_id is not None and not isinstance(tariff_id, str):
            raise BadRequest("tariffId: must be a string", extra={"field": "tariffId"})
        if rates.region(region) is None:
            raise NotFound(f"unknown region {region!r}", slug="region_not_found")
        resolved = rates.resolve(region, tariff_id)
        if resolved is None:
            raise NotFound(f"region {region!r} has no tariff {tariff_id!r}", slug="tariff_not_found")
        tar = resolved.tariff
        return RateChoice(
            resolved.rate,
            resolved.tz,
            resolved.region.code if resolved.region else region,
            tar.id if tar else None,
            tar.holidays_calendar if tar else None,
            rates.version,
        )
    if required:
        raise BadRequest(
            "rateConfig: give rateConfig (an inline rate) or regionCode (e.g. 'US-CA')", extra={"field": "rateConfig"}
        )
    return None


def holidays_in(calendar: str | None, start: date, end: date) -> frozenset[date]:
    """The holidays of ``calendar`` (``US``, ``DE-BY``…) between two dates, inclusive; none if unknown."""
    if not calendar:
        return frozenset()
    import holidays as hol  # imported lazily: only period requests with a holiday calendar need it

    country, _, subdiv = calendar.partition("-")
    try:
        cal = hol.country_holidays(country, subdiv=subdiv or None, years=range(start.year, end.year + 1))
    except (NotImplementedError, KeyError):
        return frozenset()
    return frozenset(d for d in cal if start <= d <= end)


def _bool(body: Mapping[str, Any], *names: str) -> bool:
    name, v = _pick(body, *names)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise BadRequest(f"{name}: must be true or false", extra={"field": name})
    return v


# ---------------------------------------------------------------------------------------------
# POST /calc/api/cost


def cost(body: Mapping[str, Any], rates: RatesDataset) -> dict[str, Any]:
    choice = choose_rate(body, rates)
    assert choice is not None  # noqa: S101 (required=True raises instead)
    raw_device = body.get("device")
    if raw_device is None:
        raise BadRequest("device: is required", extra={"field": "device"})
    include_fixed = _bool(body, "include_fixed_charges", "includeFixedCharges")
    breakdown = _bool(body, "breakdown")
    try:
        device = t.parse_device(raw_device)
        result = t.device_cost(choice.rate, device, include_fixed=include_fixed, with_tiers=breakdown)
    except TariffInputError as exc:
        raise bad(exc) from None
    totals = result.total
    out: dict[str, Any] = {
        "daily_cost": money(totals.daily),
        "monthly_cost": money(totals.monthly),
        "annual_cost": money(totals.annual),
        "kwh_per_day": money(result.kwh_per_day),
        "currency": result.currency,
        "mode": result.mode,
    }
    if result.tou_note:
        out["tou_note"] = result.tou_note
    if breakdown:
        out["breakdown"] = _breakdown(result, choice)
    if body.get("period") is not None:
        out["period"] = _period(body["period"], device, choice, include_fixed)
    return out


def _breakdown(result: t.CostResult, choice: RateChoice) -> dict[str, Any]:
    spec = choice.rate.spec
    return {
        "energy_daily_cost": money(result.energy.daily),
        "fixed_daily_charge": money(result.fixed_daily),
        "tiers": [{"name": u.name, "kwh_per_day": money(u.kwh), "daily_cost": money(u.cost)} for u in result.tiers],
        "flat_rate": None if spec.flat_rate is None else float(spec.flat_rate),
        "average_tou_rate": money(choice.rate.average_price) if choice.rate.has_tou else None,
        "region_code": choice.region_code,
        "tariff_id": choice.tariff_id,
        "dataset_version": choice.dataset_version,
        "conventions": "annual = daily × 365; monthly = annual ÷ 12; TOU prices averaged over a typical "
        "365-day year (weekdays 5/7, weekends 2/7, months by their days)",
    }


def _date(v: Any, field: str) -> date:
    if not isinstance(v, str):
        raise BadRequest(f"{field}: must be a date YYYY-MM-DD", extra={"field": field})
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise BadRequest(f"{field}: must be a date YYYY-MM-DD, got {v!r}", extra={"field": field}) from None


def _period(raw: Any, device: t.DeviceUsage, choice: RateChoice, include_fixed: bool) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise BadRequest("period: must be an object {start, end, timezone?}", extra={"field": "period"})
    start = _date(raw.get("start"), "period.start")
    end = _date(raw.get("end", raw.get("start")), "period.end")
    tz = choice.tz
    if raw.get("timezone") is not None:
        try:
            tz = ZoneInfo(str(raw["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequest(
                f"period.timezone: unknown IANA time zone {raw['timezone']!r}", extra={"field": "period.timezone"}
            ) from None
    if tz is None:
        raise BadRequest(
            "period.timezone: required (or give rateConfig.timezone / a regionCode)", extra={"field": "period.timezone"}
        )
    if device.watts is None or (device.schedule is None and device.hours_per_day is None):
        raise BadRequest("period: needs a device with watts and a schedule", extra={"field": "device.schedule"})
    schedule = device.schedule or ((Decimal(0), device.hours_per_day or Decimal(0)),)
    try:
        load = t.scheduled_load(device.watts, schedule, device.hours_per_day if device.schedule else None)
        pc = t.period_cost(
            choice.rate,
            load,
            start,
            end,
            tz,
            holidays=holidays_in(choice.holidays_calendar, start, end),
            include_fixed=include_fixed,
        )
    except TariffInputError as exc:
        raise bad(exc) from None
    return {
        "start": pc.start.isoformat(),
        "end": pc.end.isoformat(),
        "timezone": str(tz.key),
        "days": pc.days,
        "kwh": money(pc.kwh),
        "cost": money(pc.total_cost),
        "energy_cost": money(pc.energy_cost),
        "fixed_cost": money(pc.fixed_cost),
        "per_day": [
            {"date": d.day.isoformat(), "hours": money(d.hours), "kwh": money(d.kwh), "cost": money(d.energy_cost)}
            for d in pc.per_day
        ],
    }


# ---------------------------------------------------------------------------------------------
# POST /calc/api/shift-savings


def shift(body: Mapping[str, Any], rates: RatesDataset) -> dict[str, Any]:
    choice = choose_rate(body, rates)
    assert choice is not None  # noqa: S101
    raw_device = body.get("device")
    if raw_device is None:
        raise BadRequest("device: is required", extra={"field": "device"})
    try:
        device = t.parse_device(raw_device)
        res = t.shift_savings(choice.rate, device)
    except TariffInputError as exc:
        raise bad(exc) from None
    if res is None:
        return {"message": "no_tou_data", "savings": 0}
    s, e = res.optimal_window
    return {
        "current_cost": money(res.current_cost),
        "optimal_cost": money(res.optimal_cost),
        "optimal_window": [float(s), float(e)],
        "annual_savings": money(res.annual_savings),
        "currency": choice.rate.currency,
        "baseline": res.baseline,
    }


# ---------------------------------------------------------------------------------------------
# POST /calc/api/battery-cost and /calc/api/arbitrage


def _num(
    body: Mapping[str, Any], *names: str, required: bool = False, default: Decimal | None = None
) -> Decimal | None:
    name, v = _pick(body, *names)
    if v is None:
        if required:
            raise BadRequest(f"{name}: is required", extra={"field": name})
        return default
    try:
        return t.dec(v, name)
    except TariffInputError as exc:
        raise bad(exc) from None


def _req(body: Mapping[str, Any], *names: str) -> Decimal:
    v = _num(body, *names, required=True)
    assert v is not None  # noqa: S101
    return v


def _fraction_or_percent(v: Decimal | None, default: Decimal) -> Decimal:
    if v is None:
        return default
    return v / 100 if Decimal(1) < v <= Decimal(100) else v


def _price(body: Mapping[str, Any], rates: RatesDataset) -> tuple[Decimal, str]:
    direct = _num(body, "rate_per_kwh", "ratePerKwh")
    if direct is not None:
        if direct < 0:
            raise BadRequest("rate_per_kwh: must be ≥ 0", extra={"field": "rate_per_kwh"})
        cur = body.get("currency", "USD")
        return direct, str(cur).upper() if isinstance(cur, str) else "USD"
    choice = choose_rate(body, rates, required=False)
    if choice is None:
        raise BadRequest("rate_per_kwh: give rate_per_kwh, regionCode or rateConfig", extra={"field": "rate_per_kwh"})
    sched_raw = body.get("schedule")
    if sched_raw is not None and choice.rate.has_tou:
        try:
            sched = t.parse_schedule(sched_raw, "schedule")
        except TariffInputError as exc:
            raise bad(exc) from None
        return t.mean_price_over(choice.rate, sched), choice.rate.currency
    return choice.rate.flat_or_average, choice.rate.currency


def battery(body: Mapping[str, Any], rates: RatesDataset) -> dict[str, Any]:
    mode = body.get("mode", "ev")
    if mode not in ("ev", "electronics"):
        raise BadRequest("mode: must be 'ev' or 'electronics'", extra={"field": "mode"})
    price, currency = _price(body, rates)
    try:
        if mode == "ev":
            eff = _num(body, "charging_efficiency", "chargingEfficiency")
            r = t.ev_charging_cost(
                _req(body, "battery_kwh"),
                _req(body, "miles_per_month"),
                _req(body, "efficiency_mi_per_kwh"),
                price,
                _fraction_or_percent(eff, t.DEFAULT_EV_CHARGING_EFFICIENCY),
            )
        else:
            wh = _num(body, "battery_wh")
            if wh is None:
                mah = _num(body, "battery_mah")
                volts = _num(body, "voltage", default=Decimal("3.7"))
                if mah is None or volts is None:
                    raise BadRequest(
                        "battery_wh: is required (or battery_mah + voltage)", extra={"field": "battery_wh"}
                    )
                wh = mah * volts / 1000
            per_day = _num(body, "charges_per_day")
            if per_day is None:
                per_week = _num(body, "charges_per_week")
                if per_week is None:
                    raise BadRequest(
                        "charges_per_day: is required (or charges_per_week)", extra={"field": "charges_per_day"}
                    )
                per_day = per_week / 7
            eff = _num(body, "charger_efficiency", "charging_efficiency")
            r = t.electronics_charging_cost(wh, per_day, price, _fraction_or_percent(eff, t.DEFAULT_ADAPTER_EFFICIENCY))
    except TariffInputError as exc:
        raise bad(exc) from None
    out: dict[str, Any] = {
        "mode": mode,
        "daily_cost": money(r.cost.daily),
        "monthly_cost": money(r.cost.monthly),
        "annual_cost": money(r.cost.annual),
        "kwh_per_month": money(r.kwh_from_wall_per_day * 365 / 12),
        "kwh_to_battery_per_month": money(r.kwh_to_battery_per_day * 365 / 12),
        "charging_efficiency": float(r.efficiency),
        "rate_per_kwh": money(price),
        "full_charge_cost": money(r.full_charge_cost),
        "currency": currency,
    }
    if r.cost_per_mile is not None:
        out["cost_per_mile"] = money(r.cost_per_mile)
    if r.charges_per_month is not None:
        out["charges_per_month"] = money(r.charges_per_month)
    return out


def arbitrage(body: Mapping[str, Any]) -> dict[str, Any]:
    cycles_raw = _num(body, "cycles_per_year", default=Decimal(t.DEFAULT_CYCLES_PER_YEAR))
    assert cycles_raw is not None  # noqa: S101
    if cycles_raw != cycles_raw.to_integral_value():
        raise BadRequest("cycles_per_year: must be a whole number", extra={"field": "cycles_per_year"})
    try:
        a = t.arbitrage(
            _req(body, "battery_wh"),
            _req(body, "charge_rate"),
            _req(body, "discharge_rate"),
            round_trip_efficiency=_fraction_or_percent(
                _num(body, "round_trip_efficiency", "efficiency"), t.DEFAULT_ROUND_TRIP_EFFICIENCY
            ),
            depth_of_discharge=_fraction_or_percent(_num(body, "depth_of_discharge"), Decimal(1)),
            cycles_per_year=int(cycles_raw),
            degradation_cost_per_kwh=_num(body, "degradation_cost_per_kwh", default=Decimal(0)) or Decimal(0),
        )
    except TariffInputError as exc:
        raise bad(exc) from None
    cur = body.get("currency", "USD")
    return {
        "per_cycle_savings": money(a.savings_per_cycle),
        "annual_savings": money(a.annual_savings),
        "cycles_per_year": a.cycles_per_year,
        "kwh_delivered_per_cycle": money(a.usable_kwh),
        "kwh_bought_per_cycle": money(a.kwh_bought_per_cycle),
        "revenue_per_cycle": money(a.revenue_per_cycle),
        "charge_cost_per_cycle": money(a.charge_cost_per_cycle),
        "degradation_cost_per_cycle": money(a.degradation_cost_per_cycle),
        "breakeven_discharge_rate": money(a.breakeven_discharge_rate),
        "profitable": a.profitable,
        "currency": str(cur).upper() if isinstance(cur, str) else "USD",
    }


# ---------------------------------------------------------------------------------------------
# GET /calc/api/rates/…


def rate_detail(code: str, rates: RatesDataset) -> dict[str, Any]:
    detail = rates.region_detail(code)
    if detail is None:
        raise NotFound(f"unknown region {code!r}", slug="region_not_found")
    return detail


def rate_index(rates: RatesDataset) -> dict[str, Any]:
    return {"dataset_version": rates.version, "count": len(rates.regions), "regions": rates.index()}
