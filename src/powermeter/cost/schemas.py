"""OpenAPI 3.1 schemas and examples of the public calculator (seed 003).

Request bodies are decoded with orjson and validated by the tariff engine (whose errors name the
field), so these JSON Schemas document the contract rather than drive validation.
"""

from __future__ import annotations

from typing import Any

NUM = {"type": "number"}
HOURS = {"type": "number", "minimum": 0}

SCHEDULE = {
    "type": "array",
    "description": "[start_hour, end_hour] windows in local time; 0 ≤ start < 24, start < end ≤ start + 24. "
    "end_hour may exceed 24 for overnight windows: [22, 30] = 22:00–06:00. Windows may not overlap.",
    "items": {"type": "array", "prefixItems": [HOURS, HOURS], "minItems": 2, "maxItems": 2},
    "examples": [[[22, 30]]],
}

TOU_TIER = {
    "type": "object",
    "required": ["start_hour", "end_hour", "rate"],
    "properties": {
        "name": {"type": "string"},
        "start_hour": {"type": "number", "minimum": 0, "exclusiveMaximum": 24},
        "end_hour": {
            "type": "number",
            "description": "end < start or end > 24 wraps midnight ([21, 8] or [21, 32])",
        },
        "rate": {"type": "number", "description": "price per kWh in the rate's currency"},
        "days": {"enum": ["all", "weekday", "weekend"], "default": "all"},
        "months": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 12}},
        "season": {"type": "string", "description": "a key of rateConfig.seasons"},
    },
}

RATE_CONFIG = {
    "type": "object",
    "description": "An inline rate. Hours not covered by tou_tiers use flat_rate; overlapping tiers are an error.",
    "properties": {
        "flat_rate": {"type": "number"},
        "currency": {"type": "string", "default": "USD"},
        "tou_tiers": {"type": "array", "items": TOU_TIER},
        "seasons": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
        "fixed_daily_charge": NUM,
        "fixed_monthly_charge": {"type": "number", "description": "converted to a daily charge × 12/365"},
        "block_tiers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "up_to_kwh": {"type": ["number", "null"]},
                    "rate": {"type": ["number", "null"]},
                    "adj": NUM,
                },
            },
        },
        "block_basis": {"enum": ["month", "day"], "default": "month"},
        "timezone": {"type": "string", "description": "IANA zone for period requests"},
        "holidays_as_weekend": {"type": "boolean"},
        "holidays_calendar": {"type": "string", "description": "holidays calendar, e.g. US, CA-ON, ES"},
    },
}

POWER_STATE = {
    "type": "object",
    "required": ["watts", "hours_per_day"],
    "properties": {"name": {"type": "string"}, "watts": NUM, "hours_per_day": HOURS, "schedule": SCHEDULE},
}

DEVICE = {
    "type": "object",
    "description": "Mode is auto-selected: power_states → power_states; kwh_per_use + uses_per_week → "
    "annual_kwh; watts + hours_per_day (+ schedule) → tou when a schedule meets TOU tiers, else flat.",
    "properties": {
        "watts": NUM,
        "hours_per_day": {"type": "number", "minimum": 0, "maximum": 24},
        "schedule": SCHEDULE,
        "shiftable": {"type": "boolean"},
        "kwh_per_use": NUM,
        "uses_per_week": NUM,
        "power_states": {"type": "array", "items": POWER_STATE},
    },
}

RATE_INPUT = {
    "rateConfig": RATE_CONFIG,
    "regionCode": {"type": "string", "examples": ["US-CA"]},
    "tariffId": {"type": "string", "description": "a named tariff of the region (GET /api/rates/{regionCode})"},
}

COST_REQUEST = {
    "type": "object",
    "required": ["device"],
    "properties": {
        "device": DEVICE,
        **RATE_INPUT,
        "include_fixed_charges": {"type": "boolean", "default": False},
        "breakdown": {"type": "boolean", "default": False, "description": "add per-tier kWh/cost and provenance"},
        "period": {
            "type": "object",
            "description": "Real dates: price every local date on elapsed (UTC) time, DST included.",
            "properties": {
                "start": {"type": "string", "format": "date"},
                "end": {"type": "string", "format": "date"},
                "timezone": {"type": "string"},
            },
        },
    },
}

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

SHIFT_REQUEST = {
    "type": "object",
    "required": ["device"],
    "properties": {"device": DEVICE, **RATE_INPUT},
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

BATTERY_REQUEST = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["ev", "electronics"], "default": "ev"},
        "battery_kwh": NUM,
        "miles_per_month": NUM,
        "efficiency_mi_per_kwh": {"type": "number", "description": "battery-side (what the car shows)"},
        "charging_efficiency": {"type": "number", "description": "default 0.88 (L2); 1 if the figure is wall-side"},
        "battery_wh": NUM,
        "battery_mah": NUM,
        "voltage": NUM,
        "charges_per_day": NUM,
        "charges_per_week": NUM,
        "charger_efficiency": {"type": "number", "description": "default 0.85 (assumption)"},
        "rate_per_kwh": NUM,
        "currency": {"type": "string"},
        **RATE_INPUT,
        "schedule": SCHEDULE,
    },
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

ARBITRAGE_REQUEST = {
    "type": "object",
    "required": ["battery_wh", "charge_rate", "discharge_rate"],
    "properties": {
        "battery_wh": NUM,
        "charge_rate": NUM,
        "discharge_rate": NUM,
        "round_trip_efficiency": {"type": "number", "description": "0–1 or percent; default 0.90"},
        "depth_of_discharge": {"type": "number", "description": "0–1 or percent; default 1"},
        "cycles_per_year": {"type": "integer", "default": 365},
        "degradation_cost_per_kwh": {"type": "number", "description": "per kWh discharged; default 0"},
        "currency": {"type": "string"},
    },
}
ARBITRAGE_EXAMPLE = {"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.40}


def body(schema: dict[str, Any], examples: dict[str, Any] | None = None, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = examples
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def ok(schema: dict[str, Any], example: Any, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}}
