"""The OpenAPI document declares what clients will actually see."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient


def test_every_operation_has_an_id_and_declares_its_error_statuses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    missing: list[str] = []
    ids: set[str] = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            assert op_id, where
            assert op_id not in ids, f"duplicate operationId {op_id}"
            ids.add(op_id)
            responses = set(op["responses"])
            if "security" in op:
                need = {"401"}
                if "Requires an API key with scope" in op.get("description", ""):
                    need.add("403")
                if path.startswith("/v1/") or path == "/route":
                    need.add("429")  # daily quota / monthly route quota
                if not need <= responses:
                    missing.append(f"{where}: {sorted(need - responses)}")
    assert missing == []


def test_validation_errors_are_documented_as_the_400_we_return(client: TestClient) -> None:
    text = json.dumps(client.get("/openapi.json").json())
    assert "HTTPValidationError" not in text
    report = client.get("/openapi.json").json()["paths"]["/v1/report"]["post"]
    assert "400" in report["responses"]
    assert report["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    assert "report:write" in report["description"]


def test_authenticated_operations_declare_both_key_headers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer pm_live_…",
    }
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    me = spec["paths"]["/api/v1/me/devices"]["get"]
    assert {"bearerAuth": []} in me["security"]
    assert "security" not in spec["paths"]["/calc/api/cost"]["post"]


def test_flattened_routers_document_the_same_api_as_include_router(client: TestClient) -> None:
    from fastapi import FastAPI

    from powermeter.app import _routers

    reference = FastAPI()
    for r in _routers():
        reference.include_router(r)
    ours = client.get("/openapi.json").json()["paths"]
    theirs = reference.openapi()["paths"]
    assert set(theirs) <= set(ours)
    for path, item in theirs.items():
        for method, op in item.items():
            mine = ours[path][method]
            assert mine["operationId"] == op["operationId"]
            assert mine.get("tags") == op.get("tags")
            assert set(op["responses"]) - {"422"} <= set(mine["responses"])
