"""POST /v1/inference/batch (idempotent per record), the tag of POST /v1/inference, and the source and
tag filters of the history and the summary, against a real database."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import START
from tests.integration.web.helpers import create_key, signup

# an hour before the tests' frozen clock: records are booked at startTimeMs, so it must be recent
T0 = int(START.timestamp() * 1000) - 3_600_000


def item(key: str, **changes: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 500,
        "completion_tokens": 300,
        "startTimeMs": T0,
        "firstTokenTimeMs": T0 + 400,
        "endTimeMs": T0 + 3000,
        "source": "gateway",
        "is_estimated": False,
        "tag": "app-a",
        "idempotency_key": key,
        **changes,
    }


def test_batch_stores_each_record_as_post_inference_would_and_once_per_key(
    client: TestClient, auth: dict[str, str]
) -> None:
    records = [item("k1"), item("k2", tag="app-b", completion_tokens=10), item("k1")]
    r = client.post("/v1/inference/batch", json={"records": records}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (2, 1, 0)
    assert [d["status"] for d in body["data"]] == ["created", "created", "duplicate"]
    assert body["data"][2]["id"] == body["data"][0]["id"]

    single = {k: v for k, v in item("x").items() if k != "idempotency_key"}
    one = client.post("/v1/inference", json=single, headers=auth).json()
    assert body["data"][0]["energy_wh"] == one["energy_wh"]
    assert body["data"][0]["co2_grams"] == one["co2_grams"]

    again = client.post("/v1/inference/batch", json={"records": records}, headers=auth).json()  # a retry
    assert (again["created"], again["duplicates"]) == (0, 3)
    assert [d["id"] for d in again["data"]] == [d["id"] for d in body["data"]]
    h = client.get("/v1/inference/history", params={"source": "gateway"}, headers=auth).json()
    assert h["pagination"]["totalElements"] == 3  # k1, k2 and the single POST


def test_batch_rejects_unresolvable_records_and_stores_the_others(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(
        "/v1/inference/batch",
        headers=auth,
        json={"records": [item("a", provider="nobody-knows", model="mystery-model-9000"), item("b")]},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data[0]["status"] == "rejected"
    assert data[0]["error_code"] == "UNKNOWN_MODEL"
    assert data[1]["status"] == "created"


def test_batch_validation_names_the_field_and_the_bounds(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/inference/batch", headers=auth, json={"records": [item("a", prompt_tokens=-1)]})
    assert r.status_code == 400
    assert "prompt_tokens" in r.text
    r = client.post("/v1/inference/batch", headers=auth, json={"records": []})
    assert r.status_code == 400
    assert "records" in r.text
    r = client.post("/v1/inference/batch", headers=auth, json={"records": [item("")]})
    assert r.status_code == 400
    assert "idempotency_key" in r.text
    r = client.post("/v1/inference/batch", headers=auth, json={"records": [item(str(i)) for i in range(1001)]})
    assert r.status_code == 400
    assert "1000" in r.text
    r = client.post("/v1/inference/batch", json={"records": [item("a")]})
    assert r.status_code == 401


def test_history_and_summary_filter_by_source_and_tag(client: TestClient, auth: dict[str, str]) -> None:
    client.post(
        "/v1/inference/batch",
        headers=auth,
        json={"records": [item("1", tag="app-a"), item("2", tag="app-a"), item("3", tag="app-b"), item("4", tag=None)]},
    )
    client.post(
        "/v1/inference",
        headers=auth,
        json={
            "provider": "Google",
            "model": "gemini-3-pro",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "source": "dom_estimated",
            "tag": "app-a",
        },
    )

    def hist(**p: Any) -> dict[str, Any]:
        r = client.get("/v1/inference/history", params=p, headers=auth)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    assert hist()["pagination"]["totalElements"] == 5
    assert hist(source="gateway")["pagination"]["totalElements"] == 4
    assert hist(tag="app-a")["pagination"]["totalElements"] == 3
    a = hist(tag="app-a", source="gateway", startDate="2000-01-01", endDate="2100-01-01")
    assert a["pagination"]["totalElements"] == 2
    assert {(d["source"], d["tag"]) for d in a["data"]} == {("gateway", "app-a")}

    r = client.get("/v1/inference/summary", params={"groupBy": "tag", "source": "gateway"}, headers=auth)
    assert r.status_code == 200, r.text
    groups = {g["key"]: g["requests"] for g in r.json()["data"]["groups"]}
    assert groups == {"app-a": 2, "app-b": 1, "": 1}
    r = client.get("/v1/inference/summary", params={"groupBy": "source", "tag": "app-a"}, headers=auth)
    assert {g["key"]: g["requests"] for g in r.json()["data"]["groups"]} == {"gateway": 2, "dom_estimated": 1}
    r = client.get(
        "/v1/inference/summary",
        params={"groupBy": "model", "source": "gateway", "startDate": "2000-01-01", "endDate": "2100-01-01"},
        headers=auth,
    )
    assert r.json()["data"]["totals"]["requests"] == 4
    r = client.get("/v1/inference/summary", params={"groupBy": "color"}, headers=auth)
    assert r.status_code == 400
    assert "tag" in r.json()["detail"]


def test_dashboard_usage_page_shows_gateway_traffic_by_model_and_tag(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["inference:write", "history:read"])
    auth = {"Authorization": f"Bearer {key}"}
    empty = client.get("/dashboard/usage")
    assert "No gateway traffic in this period" in empty.text
    r = client.post(
        "/v1/inference/batch",
        headers=auth,
        json={
            "records": [
                item("1", tag="checkout-bot"),
                item("2", tag="checkout-bot"),
                item("3", tag="search", provider="anthropic", model="claude-sonnet-4-5"),
            ]
        },
    )
    assert r.status_code == 200, r.text
    page = client.get("/dashboard/usage").text
    by_model = page.split('data-testid="gateway-model"')[1].split("</table>")[0]
    by_tag = page.split('data-testid="gateway-tag"')[1].split("</table>")[0]
    assert "openai/gpt-4o" in by_model
    assert "claude-sonnet-4.5" in by_model
    assert "checkout-bot" in by_tag
    assert "search" in by_tag
