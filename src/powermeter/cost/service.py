"""The public electricity-cost calculator (seed 003): request → tariff engine → seed-shaped response.

The HTTP layer stays thin: bodies are decoded once (orjson) and validated by the request models of
``cost/schemas.py`` (the same models produce the OpenAPI, so a documented bound is the enforced one), then
by the engine's own parsers for what one field cannot say (overlapping windows…); both name the offending
field. Rates come from the dataset compiled at start-up (inline ``rateConfig`` objects are validated and
compiled once and cached by their canonical JSON), and money is rounded only here, at the edge.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ValidationError

from powermeter.cost import repository, schemas
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


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], body: Mapping[str, Any]) -> M:
    """``body`` validated by its request model; the first problem is a 400 naming the field (and, for a number
    out of range, the documented range)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        field, why = schemas.refusal(model, exc.errors(include_url=False)[0])
        raise BadRequest(f"{field}: {why}", extra={"field": field}) from None


def device_of(d: schemas.Device, field: str = "device") -> t.DeviceUsage:
    """The engine's device from a validated one: the numbers are already Decimals within their documented
    bounds, so only the rules between them are left to check (schedules, power states adding up)."""
    states: tuple[t.PowerState, ...] = ()
    if d.power_states:
        states = tuple(
            t.PowerState(
                s.name or f"state{i}",
                s.watts,
                s.hours_per_day,
                None if s.schedule is None else t.check_schedule(s.schedule, f"{field}.power_states[{i}].schedule"),
            )
            for i, s in enumerate(d.power_states)
        )
    return t.device_usage(
        watts=d.watts,
        hours_per_day=d.hours_per_day,
        schedule=None if d.schedule is None else t.check_schedule(d.schedule, f"{field}.schedule"),
        kwh_per_use=d.kwh_per_use,
        uses_per_week=d.uses_per_week,
        power_states=states,
        shiftable=bool(d.shiftable),
        field=field,
    )


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
_inline_choices: OrderedDict[bytes, RateChoice] = OrderedDict()  # validated inline rates, by canonical JSON
_compiled_lock = threading.Lock()


def compile_inline(cfg: Any, field: str, key: bytes | None = None) -> CompiledRate:
    """Compile an inline ``rateConfig`` once; later identical configs are a dictionary hit. ``key``: its
    canonical JSON when the caller has it already (a validated :class:`schemas.RateConfig`)."""
    if not isinstance(cfg, Mapping):
        raise BadRequest(f"{field}: must be an object", extra={"field": field})
    if key is None:
        try:
            key = orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # e.g. an integer past 64 bits: not cached; parsing below names the bad field
            key = None
    hit = _compiled.get(key) if key is not None else None
    if hit is not None:
        return hit
    try:
        rate = t.compile_rate(t.parse_rate_config(cfg, field), field)
    except TariffInputError as exc:
        raise bad(exc) from None
    if key is None:
        return rate
    with _compiled_lock:
        _compiled[key] = rate
        while len(_compiled) > _CACHE_MAX:
            _compiled.popitem(last=False)
    return rate


def choose_rate(
    body: Mapping[str, Any],
    rates: RatesDataset,
    *,
    required: bool = True,
    inline: schemas.RateConfig | None = None,
) -> RateChoice | None:
    """``rateConfig`` (inline) or ``regionCode`` (dataset lookup; optional ``tariffId``); ``inline``: the
    validated ``rateConfig`` of the request, if any (a rate seen before is then one dictionary hit)."""
    key = inline.cache_key if inline is not None else None
    if key is not None and body.get("regionCode") is None and body.get("region_code") is None:
        hit = _inline_choices.get(key)
        if hit is not None:
            return hit
    cfg_name, cfg = _pick(body, "rateConfig", "rate_config")
    reg_name, region = _pick(body, "regionCode", "region_code")
    _, tariff_id = _pick(body, "tariffId", "tariff_id")
    if cfg is not None and region is not None:
        raise BadRequest(f"{cfg_name}: give {cfg_name} or {reg_name}, not both", extra={"field": cfg_name})
    if cfg is not None:
        rate = compile_inline(cfg, cfg_name, key)
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
        choice = RateChoice(rate, tz, None, None, str(cal) if cal else None, None)
        if key is not None:
            with _compiled_lock:
                _inline_choices[key] = choice
                while len(_inline_choices) > _CACHE_MAX:
                    _inline_choices.popitem(last=False)
        return choice
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


# ---------------------------------------------------------------------------------------------
# POST /calc/api/cost


def cost(body: Mapping[str, Any], rates: RatesDataset) -> dict[str, Any]:
    req = validated(schemas.CostRequest, body)
    choice = choose_rate(body, rates, inline=req.rate_config)
    assert choice is not None  # noqa: S101 (required=True raises instead)
    include_fixed = bool(req.include_fixed_charges)
    breakdown = bool(req.breakdown)
    try:
        device = device_of(req.device)
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
    if req.period is not None:
        out["period"] = _period(req.period, device, choice, include_fixed)
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


def _period(req: schemas.Period, device: t.DeviceUsage, choice: RateChoice, include_fixed: bool) -> dict[str, Any]:
    start = req.start
    end = req.end or start
    tz = choice.tz
    if req.timezone is not None:
        try:
            tz = ZoneInfo(req.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequest(
                f"period.timezone: unknown IANA time zone {req.timezone!r}", extra={"field": "period.timezone"}
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
    req = validated(schemas.ShiftRequest, body)
    choice = choose_rate(body, rates, inline=req.rate_config)
    assert choice is not None  # noqa: S101
    try:
        device = device_of(req.device)
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


def _fraction_or_percent(v: Decimal | None, default: Decimal) -> Decimal:
    if v is None:
        return default
    return v / 100 if Decimal(1) < v <= Decimal(100) else v


def _required(value: Decimal | None, name: str) -> Decimal:
    if value is None:
        raise BadRequest(f"{name}: is required", extra={"field": name})
    return value


def _currency(code: str | None) -> str:
    return code.upper() if code else "USD"


def _price(req: schemas.BatteryRequest, body: Mapping[str, Any], rates: RatesDataset) -> tuple[Decimal, str]:
    if req.rate_per_kwh is not None:
        return req.rate_per_kwh, _currency(req.currency)
    choice = choose_rate(body, rates, required=False, inline=req.rate_config)
    if choice is None:
        raise BadRequest("rate_per_kwh: give rate_per_kwh, regionCode or rateConfig", extra={"field": "rate_per_kwh"})
    if req.schedule is not None and choice.rate.has_tou:
        try:
            sched = t.check_schedule(req.schedule, "schedule")
        except TariffInputError as exc:
            raise bad(exc) from None
        return t.mean_price_over(choice.rate, sched), choice.rate.currency
    return choice.rate.flat_or_average, choice.rate.currency


def battery(body: Mapping[str, Any], rates: RatesDataset) -> dict[str, Any]:
    req = validated(schemas.BatteryRequest, body)
    mode = req.mode
    price, currency = _price(req, body, rates)
    try:
        if mode == "ev":
            r = t.ev_charging_cost(
                _required(req.battery_kwh, "battery_kwh"),
                _required(req.miles_per_month, "miles_per_month"),
                _required(req.efficiency_mi_per_kwh, "efficiency_mi_per_kwh"),
                price,
                _fraction_or_percent(req.charging_efficiency, t.DEFAULT_EV_CHARGING_EFFICIENCY),
            )
        else:
            wh = req.battery_wh
            if wh is None:
                if req.battery_mah is None:
                    raise BadRequest(
                        "battery_wh: is required (or battery_mah + voltage)", extra={"field": "battery_wh"}
                    )
                wh = req.battery_mah * (req.voltage if req.voltage is not None else Decimal("3.7")) / 1000
            per_day = req.charges_per_day
            if per_day is None:
                if req.charges_per_week is None:
                    raise BadRequest(
                        "charges_per_day: is required (or charges_per_week)", extra={"field": "charges_per_day"}
                    )
                per_day = req.charges_per_week / 7
            eff = req.charger_efficiency if req.charger_efficiency is not None else req.charging_efficiency
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
    req = validated(schemas.ArbitrageRequest, body)
    try:
        a = t.arbitrage(
            req.battery_wh,
            req.charge_rate,
            req.discharge_rate,
            round_trip_efficiency=_fraction_or_percent(req.round_trip_efficiency, t.DEFAULT_ROUND_TRIP_EFFICIENCY),
            depth_of_discharge=_fraction_or_percent(req.depth_of_discharge, Decimal(1)),
            cycles_per_year=req.cycles_per_year,
            degradation_cost_per_kwh=req.degradation_cost_per_kwh or Decimal(0),
        )
    except TariffInputError as exc:
        raise bad(exc) from None
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
        "currency": _currency(req.currency),
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
