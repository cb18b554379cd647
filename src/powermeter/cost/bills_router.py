"""``POST /calc/api/bill`` and ``POST /calc/api/compare``: bills from meter readings (seed 003's family).

Public, 60 requests/minute per client IP like the rest of ``/calc/api``; errors are ``{"error": ...}``.
Bodies: JSON, ``text/csv`` (plain or Green Button CSV) or ``application/xml`` (Green Button ESPI), at most
16 MiB and 105,408 readings.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from powermeter.accounts.deps import ip_rate_limit
from powermeter.cost import bills
from powermeter.cost import schemas as s
from powermeter.cost.deps import rates_provider
from powermeter.infra.errors import error_responses
from powermeter.infra.responses import FastJSONResponse

router = APIRouter(prefix="/calc/api", tags=["cost calculator"])

_READING = {
    "type": "object",
    "required": ["start", "kwh"],
    "properties": {
        "start": {"type": "string", "format": "date-time", "description": "ISO-8601 instant (offset or Z)"},
        "kwh": {
            "type": "number",
            "minimum": -1_000_000,
            "maximum": 1_000_000,
            "description": "kWh over [start, start + interval); negative = exported to the grid",
        },
    },
}
_RATE_INPUT = {
    "tariffId": {"type": "string", "description": "A named tariff (GET /api/rates/{regionCode} lists them)"},
    "regionCode": {"type": "string", "description": "The region's default tariff (or its average flat rate)"},
    "rateConfig": {
        "type": "object",
        "description": "Inline rate as for /api/cost, plus `export_rate` (per exported kWh) and "
        "`fixed_monthly_charge` (billed per month, prorated by days for a partial month)",
    },
    "timezone": {"type": "string", "description": "IANA zone; defaults to the tariff's or region's"},
    "interval_minutes": {
        "type": "integer",
        "enum": [5, 10, 15, 30, 60],
        "description": "Reading length; inferred from the readings when absent",
    },
    "export_rate": {
        "type": "number",
        "minimum": 0,
        "maximum": 100,
        "description": "Export credit per kWh for tariffs that define none",
    },
}
BILL_REQUEST = {
    "type": "object",
    "required": ["readings"],
    "properties": {**_RATE_INPUT, "readings": {"type": "array", "maxItems": 105_408, "items": _READING}},
}
COMPARE_REQUEST = {
    "type": "object",
    "required": ["regionCode", "readings"],
    "properties": {
        **_RATE_INPUT,
        "currentTariffId": {"type": "string", "description": "savings_vs is computed against this tariff"},
        "readings": {"type": "array", "maxItems": 105_408, "items": _READING},
    },
}
_MONEY = {"type": "number"}
_MONTH = {
    "type": "object",
    "properties": {
        "month": {"type": "string", "example": "2026-11"},
        "kwh": _MONEY,
        "energy_cost": _MONEY,
        "fixed_cost": _MONEY,
        "total": _MONEY,
        "by_period": {
            "type": "object",
            "additionalProperties": {"type": "object", "properties": {"kwh": _MONEY, "cost": _MONEY}},
        },
    },
}
BILL_RESPONSE = {
    "type": "object",
    "properties": {
        "currency": {"type": "string"},
        "total": _MONEY,
        "kwh": _MONEY,
        "energy_cost": _MONEY,
        "fixed_cost": _MONEY,
        "months": {"type": "array", "items": _MONTH},
        "warnings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": ["gap", "overlap", "duplicate", "export", "dst", "partial_month"],
                    },
                    "message": {"type": "string"},
                    "count": {"type": "integer"},
                    "examples": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "period": {"type": "object"},
        "tariff": {"type": "object"},
        "method": {"type": "string"},
    },
}
COMPARE_RESPONSE = {
    "type": "object",
    "properties": {
        "regionCode": {"type": "string"},
        "currency": {"type": "string"},
        "currentTariffId": {"type": ["string", "null"]},
        "coverage": {
            "type": "object",
            "description": "Days, readings and interval the figures rest on, and how per_year was extrapolated",
            "properties": {
                "start": {"type": "string", "format": "date"},
                "end": {"type": "string", "format": "date"},
                "days": {"type": "integer"},
                "readings": {"type": "integer"},
                "full_year": {"type": "boolean"},
                "annualization": {"type": "string"},
            },
        },
        "tariffs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "rank": {"type": "integer"},
                    "tariffId": {"type": "string"},
                    "name": {"type": "string"},
                    "total": _MONEY,
                    "energy_cost": _MONEY,
                    "fixed_cost": _MONEY,
                    "per_year": {"type": "number", "description": "total × 365 ÷ coverage.days"},
                    "savings_vs": {
                        "type": "object",
                        "properties": {"tariffId": {"type": "string"}, "period": _MONEY, "per_year": _MONEY},
                    },
                },
            },
        },
        "not_priced": {"type": "array", "items": {"type": "object"}},
        "warnings": {"type": "array", "items": {"type": "object"}},
    },
}
BILL_EXAMPLE = {
    "tariffId": "pge-e-tou-c",
    "readings": [
        {"start": "2026-11-01T00:00:00-07:00", "kwh": 0.42},
        {"start": "2026-11-01T01:00:00-07:00", "kwh": 0.38},
        {"start": "2026-11-01T01:00:00-08:00", "kwh": 0.35},
    ],
}
BILL_RESPONSE_EXAMPLE = {
    "currency": "USD",
    "total": 1.0,
    "kwh": 1.15,
    "energy_cost": 0.5,
    "fixed_cost": 0.5,
    "months": [
        {
            "month": "2026-11",
            "kwh": 1.15,
            "energy_cost": 0.5,
            "fixed_cost": 0.5,
            "total": 1.0,
            "by_period": {"off_peak": {"kwh": 1.15, "cost": 0.5}},
        }
    ],
    "warnings": [
        {
            "code": "dst",
            "message": "1 day(s) with a daylight-saving change; …",
            "count": 1,
            "examples": ["2026-11-01 has 25 hours (DST ends)"],
        }
    ],
}
_FILE_BODIES = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": "timestamp,kwh\n2026-11-01T00:00:00-07:00,0.42\n2026-11-01T01:00:00-07:00,0.38\n",
    },
    "application/xml": {
        "schema": {"type": "string"},
        "description": "Green Button ESPI Atom feed (IntervalBlock/IntervalReading)",
    },
}
_QUERY = [
    {
        "name": n,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "For CSV/XML bodies: " + d,
    }
    for n, d in (
        ("tariffId", "the tariff"),
        ("regionCode", "the region"),
        ("timezone", "IANA zone of local times"),
        ("interval_minutes", "reading length"),
        ("export_rate", "export credit per kWh"),
        ("currentTariffId", "(compare) the current tariff"),
    )
]


_ERRORS = error_responses("calc", 400, 404, 413, 429)
_ERRORS[413] = {**_ERRORS[413], "description": "Body larger than 16 MiB"}


def _openapi(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    body = s.body(schema, example=example)
    body["requestBody"]["content"].update(_FILE_BODIES)
    body["parameters"] = _QUERY
    return body


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > bills.MAX_BODY_BYTES:
        raise bills.PayloadTooLarge(f"request body is {int(declared):,} bytes; at most {bills.MAX_BODY_BYTES:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > bills.MAX_BODY_BYTES:
            raise bills.PayloadTooLarge(f"request body exceeds {bills.MAX_BODY_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _inputs(request: Request) -> tuple[dict[str, Any], bytes | None, str]:
    await ip_rate_limit(request, Response())
    raw = await _read_body(request)
    return bills.split_request(request.headers.get("content-type", ""), raw, dict(request.query_params))


def _reply(request: Request, payload: dict[str, Any], version: str) -> FastJSONResponse:
    h = dict(getattr(request.state, "ratelimit_headers", None) or {})
    h["X-Dataset-Version"] = version
    return FastJSONResponse(payload, headers=h)


@router.post(
    "/bill",
    operation_id="calcBill",
    summary="Bill a meter's interval readings under a tariff, month by month",
    description="Rate: `tariffId`, `rateConfig` or `regionCode`. Readings: JSON `readings: [{start, kwh}]`, a "
    "`text/csv` body (`timestamp,kwh`, or Green Button CSV from PG&E/ComEd/PECO, SDG&E or SCE) or an "
    "`application/xml` Green Button ESPI feed, with the rate in the query string. Each reading is priced at the "
    "local wall-clock hour it fell in (DST days included); months are local calendar months; blocks reset each "
    "month; fixed charges per day (and per month, prorated). Negative readings are exports, credited at the "
    "tariff's `export_rate` or refused. Limits: 16 MiB body, 105,408 readings, 1,098 days. Money to 4 decimals. "
    "Method: docs/methodology.md, section 'Bills from meter readings'.",
    openapi_extra=_openapi(BILL_REQUEST, BILL_EXAMPLE),
    responses={
        **s.ok(BILL_RESPONSE, BILL_RESPONSE_EXAMPLE, "The bill"),
        **_ERRORS,
    },
)
async def calc_bill(request: Request) -> FastJSONResponse:
    params, body, ct = await _inputs(request)
    rates = _rates(request)
    return _reply(request, bills.bill(params, body, ct, rates), rates.version)


@router.post(
    "/compare",
    operation_id="calcCompare",
    summary="The same readings billed under every tariff of a region, cheapest first",
    description="Body as /api/bill with `regionCode` (required) and optional `currentTariffId`: each tariff's "
    "total, `per_year` (the period scaled to 365 days) and `savings_vs` the current tariff. `coverage` says how "
    "many days the readings cover and how the per-year figures were extrapolated.",
    openapi_extra=_openapi(
        COMPARE_REQUEST, {"regionCode": "US-CA", "currentTariffId": "pge-e-tou-c", "readings": BILL_EXAMPLE["readings"]}
    ),
    responses={
        **s.ok(
            COMPARE_RESPONSE,
            {"regionCode": "US-CA", "tariffs": [{"rank": 1, "tariffId": "pge-ev2-a"}]},
            "Tariffs ranked by total",
        ),
        **_ERRORS,
    },
)
async def calc_compare(request: Request) -> FastJSONResponse:
    params, body, ct = await _inputs(request)
    rates = _rates(request)
    return _reply(request, bills.compare(params, body, ct, rates), rates.version)


def _rates(request: Request) -> Any:
    return rates_provider(request).get()
