"""The public calculator's contract (seed 003): Pydantic request models and OpenAPI examples.

The request models *are* the validation: the service validates every body with them before the tariff
engine runs, and each route's OpenAPI request body is the JSON Schema of the same model
(:func:`request_schema`), so a documented bound is the enforced bound (``tests/contract/test_calc_schemas.py``
checks both). Numeric bounds come from the
engine's physical input bounds (:data:`~powermeter.methodology.tariff.INPUT_BOUNDS`), tightened where the
engine refuses more (no negative watts, efficiencies as a fraction or a percent…). The engine still checks
what one field cannot express (overlapping windows, ``end_hour`` after ``start_hour``, tiers covering the
day) and names the field the same way. A refused body is a 400 ``{"error": "<field>: <why>", "field": …}``.

Numbers are documented as JSON numbers; a decimal string ("0.15") is also accepted, as before.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    StrictBool,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from powermeter.methodology.tariff import DEFAULT_CYCLES_PER_YEAR, INPUT_BOUNDS

# ---------------------------------------------------------------------------------------------
# numbers: a Decimal within bounds, documented as a JSON number with those bounds


class _NumberSchema:
    """Document a bounded Decimal as ``{"type": "number", minimum…}``: the number branch of Pydantic's own
    schema for it, so the bounds shown are the constraints Pydantic enforces (strings stay accepted)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        js = handler(core_schema)
        branches = js.get("anyOf")
        if isinstance(branches, list):
            numbers = [b for b in branches if isinstance(b, dict) and b.get("type") == "number"]
            if numbers:
                return dict(numbers[0])
        return js


def _lo(name: str) -> Decimal:
    return INPUT_BOUNDS[name][0]


def _hi(name: str) -> Decimal:
    return INPUT_BOUNDS[name][1]


Dec = Annotated[Decimal, _NumberSchema]


def _in(
    *,
    ge: Decimal | int | None = None,
    gt: Decimal | int | None = None,
    le: Decimal | int | None = None,
    lt: Decimal | int | None = None,
) -> Any:
    """The bounds of a number (inclusive ``ge``/``le``, exclusive ``gt``/``lt``); infinities and NaN refused."""
    return Field(ge=ge, gt=gt, le=le, lt=lt, allow_inf_nan=False)


# per kWh, any sign (export credits, negative wholesale prices)
Price = Annotated[Dec, _in(ge=_lo("rate"), le=_hi("rate"))]
Watts = Annotated[Dec, _in(ge=0, le=_hi("watts"))]
HoursPerDay = Annotated[Dec, _in(ge=0, le=24)]
StartHour = Annotated[Dec, _in(ge=0, lt=24)]
EndHour = Annotated[Dec, _in(gt=0, le=48)]  # the engine also checks start < end ≤ start + 24
Efficiency = Annotated[Dec, _in(ge=_lo("efficiency"), le=_hi("efficiency"))]  # a fraction (0.01–1) or a percent (1–100)
Month = Annotated[int, Field(ge=1, le=12)]
Window = Annotated[
    tuple[StartHour, EndHour],
    Field(description="[start_hour, end_hour] in local time; start < end ≤ start + 24 (end > 24 runs past midnight)"),
]
Schedule = Annotated[
    list[Window],
    Field(
        min_length=1,
        description="[start_hour, end_hour] windows in local time; 0 ≤ start < 24, start < end ≤ start + 24. "
        "end_hour may exceed 24 for overnight windows: [22, 30] = 22:00–06:00. Windows may not overlap.",
        examples=[[[22, 30]]],
    ),
]


def _alias(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=False)


# ---------------------------------------------------------------------------------------------
# rateConfig


class TouTier(_Model):
    """One time-of-use price window in local wall-clock hours."""

    name: str | None = None
    start_hour: StartHour
    end_hour: Annotated[
        Dec, _in(ge=0, le=48), Field(description="end < start or end > 24 wraps midnight ([21, 8] or [21, 32])")
    ]
    rate: Annotated[Price, Field(description="price per kWh in the rate's currency")]
    days: Literal["all", "weekday", "weekend"] = "all"
    months: Annotated[list[Month], Field(min_length=1)] | None = None
    season: Annotated[str | None, Field(description="a key of rateConfig.seasons")] = None


class BlockTier(_Model):
    """A consumption block up to ``up_to_kwh`` (per ``block_basis``); the last block is open-ended (null)."""

    up_to_kwh: Annotated[Dec, _in(gt=0, le=_hi("up_to_kwh"))] | None = None
    rate: Price | None = None
    adj: Annotated[
        Price | None, Field(description="added to the time-based price when the block has no rate; default 0")
    ] = None


class RateConfig(_Model):
    """An inline rate. Hours not covered by tou_tiers use flat_rate; overlapping tiers are an error."""

    model_config = ConfigDict(extra="forbid")

    flat_rate: Price | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3,4}$", description="an ISO 4217 code such as 'USD'")] = "USD"
    tou_tiers: list[TouTier] | None = None
    seasons: dict[str, Annotated[list[Month], Field(min_length=1)]] | None = None
    fixed_daily_charge: Annotated[Dec, _in(ge=_lo("fixed_daily_charge"), le=_hi("fixed_daily_charge"))] | None = None
    fixed_monthly_charge: Annotated[
        Annotated[Dec, _in(ge=_lo("fixed_monthly_charge"), le=_hi("fixed_monthly_charge"))] | None,
        Field(description="converted to a daily charge × 12/365"),
    ] = None
    block_tiers: list[BlockTier] | None = None
    block_basis: Literal["month", "day"] = "month"
    timezone: Annotated[str | None, Field(description="IANA zone for period requests")] = None
    holidays_as_weekend: StrictBool | None = None
    holidays_calendar: Annotated[str | None, Field(description="holidays calendar, e.g. US, CA-ON, ES")] = None
    # descriptive labels a client may carry along with a rate (ignored by the engine)
    id: Any = None
    name: Any = None
    utility: Any = None
    plan: Any = None
    region: Any = None
    source: Any = None
    source_url: Any = None
    notes: Any = None
    description: Any = None
    effective_date: Any = None

    # the canonical JSON this rate was validated from (the key under which its compiled rate is cached)
    _key: bytes | None = PrivateAttr(default=None)

    @property
    def cache_key(self) -> bytes | None:
        # read from the private store directly: BaseModel.__getattr__ would cost ~2 µs on the hot path
        private = self.__pydantic_private__
        key = private.get("_key") if private else None
        return key if isinstance(key, bytes) else None


_RATE_CACHE_MAX = 512
_valid_rates: OrderedDict[bytes, RateConfig] = OrderedDict()
_valid_rates_lock = threading.Lock()


def _validated_once(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a rateConfig object once: an identical object (same canonical JSON) was valid before, so the
    hot path skips re-validating a rate it has already seen (the compiled rate is cached the same way)."""
    if not isinstance(value, dict):
        return handler(value)
    try:
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return handler(value)
    hit = _valid_rates.get(key)
    if hit is not None:
        return hit
    out = handler(value)
    if isinstance(out, RateConfig):
        out._key = key
    with _valid_rates_lock:
        _valid_rates[key] = out
        while len(_valid_rates) > _RATE_CACHE_MAX:
            _valid_rates.popitem(last=False)
    return out


InlineRate = Annotated[RateConfig, WrapValidator(_validated_once)]


# ---------------------------------------------------------------------------------------------
# device and requests


class PowerState(_Model):
    name: str | None = None
    watts: Watts
    hours_per_day: HoursPerDay
    schedule: Schedule | None = None


class Device(_Model):
    """Mode is auto-selected: power_states → power_states; kwh_per_use + uses_per_week → annual_kwh;
    watts + hours_per_day (+ schedule) → tou when a schedule meets TOU tiers, else flat."""

    watts: Watts | None = None
    hours_per_day: HoursPerDay | None = None
    schedule: Schedule | None = None
    shiftable: StrictBool | None = None
    kwh_per_use: Annotated[Dec, _in(ge=0, le=_hi("kwh_per_use"))] | None = None
    uses_per_week: Annotated[Dec, _in(ge=0, le=_hi("uses_per_week"))] | None = None
    power_states: Annotated[list[PowerState], Field(min_length=1)] | None = None


class Period(_Model):
    """Real dates: price every local date on elapsed (UTC) time, DST included."""

    start: date
    end: Annotated[date | None, Field(description="inclusive; default: start")] = None
    timezone: Annotated[str | None, Field(description="IANA zone; default: the rate's")] = None


class _RateInput(_Model):
    rate_config: Annotated[InlineRate | None, _alias("rateConfig", "rate_config")] = None
    region_code: Annotated[str | None, _alias("regionCode", "region_code"), Field(examples=["US-CA"])] = None
    tariff_id: Annotated[
        str | None,
        _alias("tariffId", "tariff_id"),
        Field(description="a named tariff of the region (GET /api/rates/{regionCode})"),
    ] = None


class ShiftRequest(_RateInput):
    """Body of POST /api/shift-savings (same as /api/cost; ``device.shiftable`` must be true)."""

    device: Device


class CostRequest(_RateInput):
    """Body of POST /api/cost: a device and a rate (``rateConfig`` inline, or ``regionCode``)."""

    device: Device
    include_fixed_charges: Annotated[StrictBool | None, _alias("include_fixed_charges", "includeFixedCharges")] = None
    breakdown: Annotated[StrictBool | None, Field(description="add per-tier kWh/cost and provenance")] = None
    period: Period | None = None


class BatteryRequest(_RateInput):
    """Body of POST /api/battery-cost: an EV (``mode: ev``) or a gadget (``mode: electronics``); a price from
    ``rate_per_kwh``, ``regionCode`` or ``rateConfig`` (with ``schedule``: the mean price over those hours)."""

    mode: Literal["ev", "electronics"] = "ev"
    battery_kwh: Annotated[Dec, _in(gt=0, le=_hi("battery_kwh"))] | None = None
    miles_per_month: Annotated[Dec, _in(ge=0, le=_hi("miles_per_month"))] | None = None
    efficiency_mi_per_kwh: Annotated[
        Annotated[Dec, _in(ge=_lo("efficiency_mi_per_kwh"), le=_hi("efficiency_mi_per_kwh"))] | None,
        Field(description="battery-side (what the car shows)"),
    ] = None
    charging_efficiency: Annotated[
        Efficiency | None,
        _alias("charging_efficiency", "chargingEfficiency"),
        Field(description="default 0.88 (L2); 1 if the figure is wall-side; a fraction or a percent"),
    ] = None
    battery_wh: Annotated[Dec, _in(gt=0, le=_hi("battery_wh"))] | None = None
    battery_mah: Annotated[Dec, _in(gt=0, le=_hi("battery_mah"))] | None = None
    voltage: Annotated[Annotated[Dec, _in(gt=0, le=_hi("voltage"))] | None, Field(description="default 3.7")] = None
    charges_per_day: Annotated[Dec, _in(ge=0, le=_hi("charges_per_day"))] | None = None
    charges_per_week: Annotated[Dec, _in(ge=0, le=_hi("charges_per_week"))] | None = None
    charger_efficiency: Annotated[
        Efficiency | None, Field(description="default 0.85 (assumption); a fraction or a percent")
    ] = None
    rate_per_kwh: Annotated[
        Annotated[Dec, _in(ge=0, le=_hi("rate_per_kwh"))] | None, _alias("rate_per_kwh", "ratePerKwh")
    ] = None
    currency: str | None = None
    schedule: Schedule | None = None


class ArbitrageRequest(_Model):
    """Body of POST /api/arbitrage."""

    battery_wh: Annotated[Dec, _in(gt=0, le=_hi("battery_wh"))]
    charge_rate: Price
    discharge_rate: Price
    round_trip_efficiency: Annotated[
        Efficiency | None,
        _alias("round_trip_efficiency", "efficiency"),
        Field(description="a fraction or a percent; default 0.90"),
    ] = None
    depth_of_discharge: Annotated[Efficiency | None, Field(description="a fraction or a percent; default 1")] = None
    cycles_per_year: Annotated[int, Field(ge=0, le=3660)] = DEFAULT_CYCLES_PER_YEAR
    degradation_cost_per_kwh: Annotated[
        Annotated[Dec, _in(ge=0, le=_hi("degradation_cost_per_kwh"))] | None,
        Field(description="per kWh discharged; default 0"),
    ] = None
    currency: str | None = None


# ---------------------------------------------------------------------------------------------
# examples and response schemas (documentation of what the service returns)

NUM = {"type": "number"}

COST_RESPONSE = {
    "type": "object",
    "required": ["daily_cost", "monthly_cost", "annual_cost", "kwh_per_day", "currency", "mode"],
    "properties": {
        "daily_cost": NUM,
        "monthly_cost": {"type": "number", "description": "annual_cost ÷ 12"},
        "annual_cost": {"type": "number", "description": "daily_cost × 365"},
        "kwh_per_day": NUM,
        "currency": {"type": "string"},
        "mode": {"enum": ["flat", "tou", "annual_kwh", "power_states"]},
        "tou_note": {"type": "string"},
        "breakdown": {"type": "object"},
        "period": {"type": "object"},
    },
}

COST_EXAMPLES = {
    "flat": {
        "summary": "Simple flat rate + wattage",
        "value": {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}},
    },
    "tou": {
        "summary": "Rate + wattage + overnight schedule",
        "value": {
            "device": {"watts": 100, "hours_per_day": 8, "schedule": [[22, 30]]},
            "rateConfig": {
                "flat_rate": 0.15,
                "currency": "USD",
                "tou_tiers": [
                    {"name": "off-peak", "start_hour": 0, "end_hour": 9, "rate": 0.12},
                    {"name": "peak", "start_hour": 9, "end_hour": 24, "rate": 0.30},
                ],
            },
        },
    },
    "region": {
        "summary": "Region lookup (PG&E E-TOU-C for a scheduled device)",
        "value": {"device": {"watts": 1500, "hours_per_day": 2, "schedule": [[17, 19]]}, "regionCode": "US-CA"},
    },
    "annual_kwh": {
        "summary": "Label energy per use",
        "value": {"device": {"kwh_per_use": 1.0, "uses_per_week": 5}, "regionCode": "US-TX"},
    },
    "power_states": {
        "summary": "Multi-state device",
        "value": {
            "device": {
                "power_states": [
                    {"name": "active", "watts": 120, "hours_per_day": 4},
                    {"name": "idle", "watts": 40, "hours_per_day": 8},
                    {"name": "standby", "watts": 2, "hours_per_day": 12},
                ]
            },
            "rateConfig": {"flat_rate": 0.15},
        },
    },
}

COST_RESPONSE_EXAMPLE = {
    "daily_cost": 0.12,
    "monthly_cost": 3.65,
    "annual_cost": 43.8,
    "kwh_per_day": 0.8,
    "currency": "USD",
    "mode": "flat",
}

SHIFT_EXAMPLE = {"device": {"watts": 1500, "hours_per_day": 3, "shiftable": True}, "regionCode": "US-CA"}
SHIFT_RESPONSE = {
    # each branch names its required members, so one answer matches exactly one branch
    "oneOf": [
        {
            "type": "object",
            "required": ["current_cost", "optimal_cost", "optimal_window", "annual_savings", "currency", "baseline"],
            "properties": {
                "current_cost": {
                    "type": "number",
                    "description": "per day: the device's schedule, or an average start",
                },
                "optimal_cost": {"type": "number", "description": "per day, in the cheapest continuous window"},
                "optimal_window": {"type": "array", "items": NUM, "description": "[start_hour, end_hour]"},
                "annual_savings": {"type": "number", "description": "(current − optimal) × 365"},
                "currency": {"type": "string"},
                "baseline": {"enum": ["schedule", "average_start"]},
            },
        },
        {
            "type": "object",
            "required": ["message", "savings"],
            "properties": {"message": {"const": "no_tou_data"}, "savings": {"const": 0}},
        },
    ]
}
SHIFT_RESPONSE_EXAMPLE = {
    "current_cost": 1.7591,
    "optimal_cost": 1.6991,
    "optimal_window": [0.0, 3.0],
    "annual_savings": 21.9,
    "currency": "USD",
    "baseline": "average_start",
}

BATTERY_EXAMPLES = {
    "ev": {
        "summary": "EV",
        "value": {
            "mode": "ev",
            "battery_kwh": 75,
            "miles_per_month": 1000,
            "efficiency_mi_per_kwh": 4,
            "rate_per_kwh": 0.15,
        },
    },
    "electronics": {
        "summary": "Phone",
        "value": {"mode": "electronics", "battery_wh": 15, "charges_per_day": 1, "regionCode": "GB"},
    },
}

ARBITRAGE_EXAMPLE = {"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.40}


def body(
    model: type[BaseModel] | dict[str, Any], examples: dict[str, Any] | None = None, example: Any = None
) -> dict[str, Any]:
    """``openapi_extra`` declaring an operation's JSON body: a request model (the route reads the raw body and
    the service validates it with the same model), or a plain JSON Schema (the bill routes' multi-format bodies)."""
    media: dict[str, Any] = {"schema": model if isinstance(model, dict) else request_schema(model)}
    if examples:
        media["examples"] = examples
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def ok(schema: dict[str, Any], example: Any, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}}


# ---------------------------------------------------------------------------------------------
# the OpenAPI request schemas, and refusals worded from them


@functools.cache
def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (validation mode) with its ``$defs`` inlined, for an operation's request body
    (self-contained, so the calculator's own OpenAPI and the app's carry it alike)."""
    js = model.model_json_schema(mode="validation")
    defs: dict[str, Any] = js.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: resolve(v) for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.rsplit("/", 1)[-1]]), **rest}
            # "default": null says nothing for an optional member (and FastAPI's OpenAPI drops it)
            return {k: resolve(v) for k, v in node.items() if not (k == "default" and v is None)}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(js)
    return resolved


def _present(node: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    branches = node.get("anyOf")
    if isinstance(branches, list):
        for b in branches:
            if isinstance(b, dict) and b.get("type") != "null":
                return b
    return node


@functools.cache
def _documented_names(model: type[BaseModel]) -> dict[str, str]:
    """Other accepted spellings of a field (``rate_config``) → its documented name (``rateConfig``)."""
    out: dict[str, str] = {}
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [c for c in alias.choices if isinstance(c, str)]
            out.update(dict.fromkeys(names[1:], names[0]) if names else {})
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out.update(_documented_names(arg))
    return out


def schema_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The documented schema of the input at ``loc`` (a Pydantic error location) in a ``model`` body."""
    node = request_schema(model)
    names = _documented_names(model)
    for part in loc:
        node = _present(node)
        if isinstance(part, int):
            prefix = node.get("prefixItems")
            nxt = prefix[part] if isinstance(prefix, list) and part < len(prefix) else node.get("items")
        else:
            props = node.get("properties", {})
            nxt = props.get(part, props.get(names.get(part, ""), node.get("additionalProperties")))
        if not isinstance(nxt, dict):
            return {}
        node = nxt
    return _present(node)


def field_name(loc: tuple[int | str, ...]) -> str:
    """``("device", "schedule", 0, 1)`` → ``device.schedule[0][1]`` (the engine's way of naming a field)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _number(x: object) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    text = str(x)
    return text if len(text) <= 24 else f"{float(x):.6e}" if isinstance(x, int | float) else text[:24] + "…"


def _range(node: dict[str, Any]) -> str:
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    excluded = [_number(node[k]) for k in ("exclusiveMinimum", "exclusiveMaximum") if k in node]
    return f"between {_number(lo)} and {_number(hi)}" + (f" ({' and '.join(excluded)} excluded)" if excluded else "")


_NOT_A_NUMBER = {"decimal_parsing", "decimal_type", "float_parsing", "float_type", "int_parsing", "int_type"}
_OUT_OF_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def refusal(model: type[BaseModel], error: Mapping[str, Any]) -> tuple[str, str]:
    """``(field, why)`` for one Pydantic error on a ``model`` body, worded like the engine's own refusals; a
    number out of range names the documented range (read from the schema that enforced it)."""
    loc = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    node = schema_at(model, loc)
    if kind == "missing":
        why = "is required"
    elif kind in _OUT_OF_RANGE:
        why = f"must be {_range(node)}, got {_number(value)}"
    elif kind in _NOT_A_NUMBER:
        why = "must be a number" + (f", got {value!r}" if isinstance(value, str) else "")
    elif kind == "int_from_float":
        why = f"must be a whole number, got {_number(value)}"
    elif kind == "finite_number":
        why = "must be a finite number"
    elif kind in ("bool_type", "bool_parsing"):
        why = "must be true or false"
    elif kind == "literal_error":
        why = f"must be one of {ctx.get('expected', '')}"
    elif kind == "extra_forbidden":
        known = sorted(schema_at(model, loc[:-1]).get("properties", {}))
        why = f"unknown field; known fields: {', '.join(known)}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        why = "must be an object"
    elif kind in ("list_type", "tuple_type"):
        why = "must be a list"
    elif kind == "too_short":
        why = "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx.get('min_length')} items"
    elif kind == "too_long":
        why = f"takes at most {ctx.get('max_length')} items"
    elif kind == "string_type":
        why = "must be a string"
    elif kind == "string_pattern_mismatch":
        why = f"must be {node['description']}" if node.get("description") else f"must match {ctx.get('pattern')}"
    elif kind.startswith("date"):
        why = "must be a date YYYY-MM-DD" + (f", got {value!r}" if isinstance(value, str) else "")
    else:
        msg = str(error.get("msg", "is invalid"))
        why = msg[:1].lower() + msg[1:]
    return field_name(loc), why
