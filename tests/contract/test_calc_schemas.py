"""The calculator's request schemas drive its validation (issue 12): for every request model, the OpenAPI
body schema is the model's own, and every documented numeric bound is the bound the API enforces: a value
just outside it is a 400 in the calculator's error shape naming the field and that range, and a value on
(or just inside) it is not refused for its range."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from powermeter.cost import schemas
from powermeter.methodology.tariff import RATE_CONFIG_KEYS, RATE_CONFIG_LABELS

Path = tuple[str | int, ...]

CASES: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    (
        "/api/cost",
        schemas.CostRequest,
        {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}},
    ),
    (
        "/api/shift-savings",
        schemas.ShiftRequest,
        {"device": {"watts": 1500, "hours_per_day": 3, "shiftable": True}, "rateConfig": {"flat_rate": 0.15}},
    ),
    (
        "/api/battery-cost",
        schemas.BatteryRequest,
        {"mode": "ev", "battery_kwh": 75, "miles_per_month": 1000, "efficiency_mi_per_kwh": 4, "rate_per_kwh": 0.15},
    ),
    ("/api/arbitrage", schemas.ArbitrageRequest, {"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.40}),
]
BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _present(node: dict[str, Any]) -> dict[str, Any]:
    for branch in node.get("anyOf", ()):
        if branch.get("type") != "null":
            return dict(branch)
    return node


def _children(node: dict[str, Any]) -> Iterator[tuple[str | int, dict[str, Any]]]:
    node = _present(node)
    yield from node.get("properties", {}).items()
    if isinstance(node.get("additionalProperties"), dict):
        yield "x", node["additionalProperties"]
    if "prefixItems" in node:
        yield from enumerate(node["prefixItems"])
    elif isinstance(node.get("items"), dict):
        yield 0, node["items"]


def bounded_numbers(node: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every number or integer in the schema that documents a bound, with its path from the body's root."""
    here = _present(node)
    if here.get("type") in ("number", "integer") and any(k in here for k in BOUND_KEYS):
        yield path, here
    for key, sub in _children(node):
        yield from bounded_numbers(sub, (*path, key))


def sample(node: dict[str, Any]) -> Any:
    """A value the schema accepts: required members filled, numbers inside their bounds."""
    node = _present(node)
    kind = node.get("type")
    if kind in ("number", "integer"):
        lo = node.get("minimum", node.get("exclusiveMinimum", 0))
        hi = node.get("maximum", node.get("exclusiveMaximum", lo + 2))
        mid = (lo + hi) / 2
        return int(mid) if kind == "integer" else mid
    if kind == "object":
        return {name: sample(node["properties"][name]) for name in node.get("required", [])}
    if kind == "array":
        if "prefixItems" in node:
            return [sample(item) for item in node["prefixItems"]]
        return [sample(node["items"])]
    if "enum" in node or "const" in node:
        return node.get("const", (node.get("enum") or [None])[0])
    return "x" if kind == "string" else None


def with_value(root_schema: dict[str, Any], body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """``body`` with ``value`` at ``path``, creating any missing container from its schema's sample."""
    out = copy.deepcopy(body)
    node: Any = out
    schema = root_schema
    for i, key in enumerate(path):
        schema = dict(_children(schema))[key]
        if i == len(path) - 1:
            if isinstance(node, list) and key == len(node):
                node.append(value)
            else:
                node[key] = value
            break
        present = (key in node) if isinstance(node, dict) else (key < len(node))
        if not present or node[key] is None:
            filler = sample(schema)
            if isinstance(node, list):
                node.append(filler)
            else:
                node[key] = filler
        node = node[key]
    return out


def field_of(path: Path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(path))


def fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def outside_and_edge(node: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(bound keyword, a value just outside it, the closest value the bound allows)."""
    step = 1 if node["type"] == "integer" else 0.001
    if "minimum" in node:
        yield "minimum", node["minimum"] - step, node["minimum"]
    if "exclusiveMinimum" in node:
        yield "exclusiveMinimum", node["exclusiveMinimum"], node["exclusiveMinimum"] + step
    if "maximum" in node:
        yield "maximum", node["maximum"] + step, node["maximum"]
    if "exclusiveMaximum" in node:
        yield "exclusiveMaximum", node["exclusiveMaximum"], node["exclusiveMaximum"] - step


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    doc: dict[str, Any] = client.get("/calc/api/openapi.json").json()
    return doc


@pytest.mark.parametrize(("path", "model", "base"), CASES, ids=[c[0] for c in CASES])
def test_the_openapi_body_is_the_request_model(
    client: TestClient, spec: dict[str, Any], path: str, model: type[BaseModel], base: dict[str, Any]
) -> None:
    documented = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert documented == schemas.request_schema(model)
    app_doc = client.get("/openapi.json").json()["paths"]["/calc" + path]["post"]
    assert app_doc["requestBody"]["content"]["application/json"]["schema"] == documented
    assert client.post("/calc" + path, json=base).status_code == 200  # the base body of the bound checks is valid


@pytest.mark.parametrize(("path", "model", "base"), CASES, ids=[c[0] for c in CASES])
def test_every_documented_bound_is_the_enforced_bound(
    app: FastAPI, spec: dict[str, Any], path: str, model: type[BaseModel], base: dict[str, Any]
) -> None:
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    numbers = list(bounded_numbers(schema))
    assert len(numbers) >= 3, "the request documents its bounds"
    # the calculator allows 60 requests a minute per client address: spread the checks over addresses
    addresses = itertools.count(1)
    clients: list[TestClient] = []
    sent = 0

    def post(body: dict[str, Any]) -> Any:
        nonlocal sent
        if sent % 50 == 0:
            clients.append(TestClient(app, client=(f"10.12.0.{next(addresses)}", 50000)))
        sent += 1
        return clients[-1].post("/calc" + path, json=body)

    checked = 0
    for where, node in numbers:
        field = field_of(where)
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        hi = node.get("maximum", node.get("exclusiveMaximum"))
        for keyword, outside, edge in outside_and_edge(node):
            r = post(with_value(schema, base, where, outside))
            assert r.status_code == 400, (field, keyword, outside, r.text)
            doc = r.json()
            assert doc["field"] == field, (keyword, doc)
            assert doc["error"].startswith(f"{field}: must be between {fmt(lo)} and {fmt(hi)}"), doc
            r = post(with_value(schema, base, where, edge))
            if r.status_code == 400:  # the engine may still refuse the value for another rule, never its range
                assert not (r.json()["field"] == field and "must be between" in r.json()["error"]), r.json()
            checked += 1
    assert checked >= len(numbers)


def test_the_rate_model_knows_exactly_the_engines_rate_fields() -> None:
    assert set(schemas.RateConfig.model_fields) == RATE_CONFIG_KEYS | RATE_CONFIG_LABELS
