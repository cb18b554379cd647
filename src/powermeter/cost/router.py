"""Public electricity-cost calculator (seed 003), mounted at ``/calc`` (the seed's base URL).

No authentication; 60 requests/minute per client IP. Error bodies are ``{"error": ...}``.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request, Response

from powermeter.accounts.deps import ip_rate_limit
from powermeter.cost import schemas as s
from powermeter.cost import service
from powermeter.cost.deps import rates_provider
from powermeter.infra.errors import error_responses
from powermeter.infra.responses import FastJSONResponse

router = APIRouter(prefix="/calc/api", tags=["cost calculator"])


async def _limit(request: Request) -> None:
    """60 requests/minute per client IP (seed 003). Called inline rather than as a route dependency: the
    limiter is the same, minus FastAPI's dependency-solving overhead on the hot path."""
    await ip_rate_limit(request, Response())  # headers reach the reply via request.state


_ERRORS = error_responses("calc", 400, 429)


def _json(request: Request, payload: Any, headers: dict[str, str] | None = None) -> FastJSONResponse:
    """A JSON response carrying the per-IP RateLimit-* headers set by the dependency."""
    h = dict(getattr(request.state, "ratelimit_headers", None) or {})
    if headers:
        h.update(headers)
    return FastJSONResponse(payload, headers=h)


def _rates(request: Request) -> Any:
    return rates_provider(request).get()


@router.post(
    "/cost",
    operation_id="calcCost",
    summary="Daily/monthly/annual cost for a device",
    description="Rate input: `rateConfig` (inline) or `regionCode` (dataset lookup, optional `tariffId`). "
    "Money is rounded to 4 decimals; annual = daily × 365 and monthly = annual ÷ 12.",
    openapi_extra=s.body(s.CostRequest, s.COST_EXAMPLES),
    responses={
        **s.ok(s.COST_RESPONSE, s.COST_RESPONSE_EXAMPLE, "Cost of the device"),
        **error_responses("calc", 400, 404, 429),
    },
)
async def calc_cost(request: Request) -> FastJSONResponse:
    await _limit(request)
    body = service.decode_body(await request.body())
    return _json(request, service.cost(body, _rates(request)))


@router.post(
    "/shift-savings",
    operation_id="calcShiftSavings",
    summary="Cheapest continuous run window for a shiftable device on a TOU rate",
    description="Same body as /api/cost; `device.shiftable` must be true. Costs are per day; the window may wrap "
    "midnight ([22, 25] = 22:00–01:00).",
    openapi_extra=s.body(s.ShiftRequest, example=s.SHIFT_EXAMPLE),
    responses={
        **s.ok(s.SHIFT_RESPONSE, s.SHIFT_RESPONSE_EXAMPLE, "Savings, or no_tou_data"),
        **error_responses("calc", 400, 404, 429),
    },
)
async def calc_shift_savings(request: Request) -> FastJSONResponse:
    await _limit(request)
    body = service.decode_body(await request.body())
    return _json(request, service.shift(body, _rates(request)))


@router.post(
    "/battery-cost",
    operation_id="calcBatteryCost",
    summary="Charging cost for consumer electronics or an EV",
    openapi_extra=s.body(s.BatteryRequest, s.BATTERY_EXAMPLES),
    responses={
        **s.ok({"type": "object"}, {"mode": "ev", "monthly_cost": 42.6136, "annual_cost": 511.3636}, "Charging cost"),
        **error_responses("calc", 400, 404, 429),
    },
)
async def calc_battery_cost(request: Request) -> FastJSONResponse:
    await _limit(request)
    body = service.decode_body(await request.body())
    return _json(request, service.battery(body, _rates(request)))


@router.post(
    "/arbitrage",
    operation_id="calcArbitrage",
    summary="Savings from charging a battery cheap and discharging when power is expensive",
    openapi_extra=s.body(s.ArbitrageRequest, example=s.ARBITRAGE_EXAMPLE),
    responses={
        **s.ok(
            {"type": "object"}, {"per_cycle_savings": 3.6, "annual_savings": 1314.0}, "Per-cycle and annual savings"
        ),
        **_ERRORS,
    },
)
async def calc_arbitrage(request: Request) -> FastJSONResponse:
    await _limit(request)
    body = service.decode_body(await request.body())
    return _json(request, service.arbitrage(body))


@router.get(
    "/rates/index",
    operation_id="calcRatesIndex",
    summary="Slim list of all locations",
    responses={
        **s.ok(
            {"type": "array", "items": {"type": "object"}},
            [
                {
                    "regionCode": "US-CA",
                    "name": "California",
                    "country": "US",
                    "currency": "USD",
                    "flat_rate": 0.2951,
                    "year": 2023,
                    "has_tou": True,
                    "tariffs": ["pge-e-tou-c"],
                }
            ],
            "Every region code",
        ),
        **error_responses("calc", 429),
    },
)
async def calc_rates_index(request: Request) -> FastJSONResponse:
    await _limit(request)
    rates = _rates(request)
    return _json(request, rates.index(), {"X-Dataset-Version": rates.version})


@router.get(
    "/rates/{regionCode}",
    operation_id="calcRatesRegion",
    summary="Full rate dataset (flat rate + TOU tiers + named tariffs) for a location",
    responses={
        **s.ok(
            {"type": "object"},
            {"regionCode": "US-CA", "flat_rate": 0.2951, "currency": "USD", "default_tariff": "pge-e-tou-c"},
            "The region's rates",
        ),
        **error_responses("calc", 404, 429),
    },
)
async def calc_rates_region(regionCode: str, request: Request) -> FastJSONResponse:
    await _limit(request)
    rates = _rates(request)
    return _json(request, service.rate_detail(regionCode, rates), {"X-Dataset-Version": rates.version})


@router.get(
    "/openapi.json", operation_id="calcOpenapi", summary="OpenAPI 3.1 of the calculator API", include_in_schema=False
)
async def calc_openapi(request: Request) -> FastJSONResponse:
    await _limit(request)
    spec: dict[str, Any] | None = getattr(request.app.state, "calc_openapi", None)
    if spec is None:  # derived once from the app's (cached) OpenAPI document
        spec = request.app.state.calc_openapi = family_openapi(request.app.openapi())
    return _json(request, spec)


def family_openapi(full: dict[str, Any]) -> dict[str, Any]:
    """The calculator's own OpenAPI 3.1 document: its paths relative to the ``/calc`` base URL."""
    paths = {p[len("/calc") :]: copy.deepcopy(v) for p, v in full.get("paths", {}).items() if p.startswith("/calc/")}
    for item in paths.values():
        for op in item.values():
            # bodies are validated by the request models in the service (400s); FastAPI's generic 422 never happens
            op.get("responses", {}).pop("422", None)
    schemas = full.get("components", {}).get("schemas", {})
    needed: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in needed and name in schemas:
                    needed[name] = schemas[name]
                    walk(schemas[name])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(paths)
    return {
        "openapi": full.get("openapi", "3.1.0"),
        "info": {
            "title": "powermeter electricity cost calculator",
            "version": full.get("info", {}).get("version", "0"),
            "description": "Public, no-auth endpoints to compute electricity costs from a rate, wattage and usage "
            'schedule. 60 requests/minute per IP; 429 bodies are {"error": "rate_limited", "retry_after": N} '
            "with a Retry-After header.",
        },
        "servers": [{"url": "/calc"}],
        "paths": paths,
        "components": {"schemas": needed},
    }
