"""POST /v1/inference, GET /v1/inference/history, /summary and /models against a real database
(SQLite per test, or PostgreSQL when POWERMETER_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.inference import repository
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from tests.conftest import MakeKey

SEED_BODY: dict[str, Any] = {
    "provider": "Google",
    "model": "gemini-3-pro",
    "prompt_tokens": 788,
    "completion_tokens": 312,
    "reasoning_tokens": 0,
    "cached_tokens": 0,
    "startTimeMs": 1710000000000,
    "firstTokenTimeMs": 1710000010000,
    "source": "dom_estimated",
    "is_estimated": True,
    "estimation_method": "dom_gpt_tokenizer_v1",
}
MESSAGE_RE = re.compile(r"^This request cost the equivalent of \d+\.\d{4} days of a tree's carbon absorption\.$")
MASKED_RE = re.compile(r"^pm_live_\.\.\.[0-9A-Za-z]{4}$")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(client: TestClient, key: str, **changes: Any) -> Any:
    """The seed body, booked when received (the seed's startTimeMs is March 2024: with it, the record
    is booked then), unless a test gives the timestamps."""
    body = {**SEED_BODY, "startTimeMs": None, "firstTokenTimeMs": None, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/v1/inference", json=body, headers=bearer(key))


# -- POST /v1/inference ----------------------------------------------------------------------------


def test_seed_example_returns_every_documented_field(client: TestClient, api_key: str) -> None:
    r = client.post("/v1/inference", json=SEED_BODY, headers=bearer(api_key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body)[:6] == ["energy_wh", "co2_grams", "water_ml", "tree_days", "audit", "message"]
    for field in ("energy_wh", "co2_grams", "water_ml", "tree_days"):
        assert isinstance(body[field], float)
        assert body[field] > 0
    assert set(body["audit"]) == {
        "calculationMethod",
        "finalRegion",
        "finalProvider",
        "treeGramsCo2PerDay",
        "treeSource",
    }
    assert {k: body["audit"][k] for k in ("calculationMethod", "finalRegion", "finalProvider")} == {
        "calculationMethod": "PROVIDER_DEFAULT",
        "finalRegion": "US",
        "finalProvider": "Google Cloud",
    }
    assert MESSAGE_RE.match(body["message"])
    assert body["message"] == (
        f"This request cost the equivalent of {body['tree_days']:.4f} days of a tree's carbon absorption."
    )
    # extras: ranges around the central value, resolution, factors with sources, versions
    for field in ("energy_wh", "co2_grams", "water_ml"):
        rng = body["ranges"][field]
        assert rng["min"] <= body[field] <= rng["max"]
    assert body["model"]["modelId"] == "google/gemini-3-pro-preview"
    assert body["model"]["source"]
    assert body["factors"]["gridIntensitySource"]
    assert body["methodology"]["modelCatalog"].startswith("sha256:")
    parts = body["breakdown"]
    assert parts["prefill_wh"] + parts["decode_wh"] + parts["server_wh"] == pytest.approx(body["energy_wh"], abs=3e-6)
    assert body["tokens"] == {"output_counted": 312, "prompt_uncached": 788, "prompt_cached": 0}


def test_the_record_keeps_its_inputs_and_dataset_versions(client: TestClient, api_key: str, state: AppState) -> None:
    body = post(client, api_key, detected_region="europe-west4").json()
    with state.db.begin() as conn:
        stored = repository.get_details(conn, body["id"])
    assert stored is not None
    details = json.loads(stored)
    assert details["inputs"]["detected_region"] == "europe-west4"
    assert details["inputs"]["estimation_method"] == "dom_gpt_tokenizer_v1"
    assert details["model"]["id"] == body["model"]["modelId"]
    assert details["versions"] == body["methodology"]
    assert details["ranges"] == body["ranges"]
    # time-ordered UUIDv7 ids
    assert uuid.UUID(body["id"]).version == 7


def test_detected_region_gives_exact_region(client: TestClient, api_key: str) -> None:
    r = post(client, api_key, provider="OpenAI", model="gpt-4o", detected_region="us-west-1")
    assert r.status_code == 200, r.text
    audit = r.json()["audit"]
    assert audit.pop("treeGramsCo2PerDay")
    assert audit.pop("treeSource")
    assert audit == {"calculationMethod": "EXACT_REGION", "finalRegion": "us-west-1", "finalProvider": "AWS"}


def test_unknown_region_falls_back_to_provider_default_with_a_warning(client: TestClient, api_key: str) -> None:
    r = post(client, api_key, provider="Mistral", model="mistralai/mistral-large-2512", detected_region="mars-1")
    body = r.json()
    assert body["audit"]["calculationMethod"] == "PROVIDER_DEFAULT"
    assert body["audit"]["finalRegion"] == "SE"
    assert "detected-region-unknown" in body["warnings"]


def test_aggregator_without_region_is_global_average(client: TestClient, api_key: str) -> None:
    r = post(client, api_key, provider="OpenRouter", model="qwen/qwen3-235b-a22b:free")
    body = r.json()
    assert body["audit"].pop("treeGramsCo2PerDay")
    assert body["audit"].pop("treeSource")
    assert body["audit"] == {
        "calculationMethod": "GLOBAL_AVERAGE",
        "finalRegion": "WORLD",
        "finalProvider": "OpenRouter",
    }
    assert body["model"]["variant"] == "free"
    # an open model still gets a range where the site's PUE/WUE are a range (generic figures)
    assert body["ranges"]["energy_wh"]["min"] < body["ranges"]["energy_wh"]["max"]


def test_gpt4o_300_tokens_is_within_the_published_range(client: TestClient, api_key: str) -> None:
    r = post(
        client,
        api_key,
        provider="OpenAI",
        model="openai/gpt-4o",
        prompt_tokens=400,
        completion_tokens=300,
        startTimeMs=None,
        firstTokenTimeMs=None,
    )
    body = r.json()
    assert 0.2 <= body["ranges"]["energy_wh"]["min"] <= body["energy_wh"] <= body["ranges"]["energy_wh"]["max"] <= 1.2


def test_prompt_tokens_raise_and_cached_tokens_lower_the_estimate(client: TestClient, api_key: str) -> None:
    def energy(**kw: Any) -> float:
        r = post(client, api_key, provider="OpenAI", model="gpt-4o", **kw)
        assert r.status_code == 200, r.text
        return float(r.json()["energy_wh"])

    short = energy(prompt_tokens=100)
    long = energy(prompt_tokens=20_000)
    cached = energy(prompt_tokens=20_000, cached_tokens=18_000)
    assert short < cached < long


def test_unknown_model_without_fallback_is_a_400_that_says_so(client: TestClient, api_key: str) -> None:
    r = post(client, api_key, provider="Acme Cloud", model="acme/mystery-model")
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "UNKNOWN_MODEL"
    assert "acme/mystery-model" in body["detail"]
    assert "timestamp" in body


def test_missing_model_uses_the_provider_fallback_or_is_refused(client: TestClient, api_key: str) -> None:
    ok = post(client, api_key, provider="OpenAI", model=None)
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"]["match"] == "provider_fallback"
    assert "model-estimated-from-provider-fallback" in ok.json()["warnings"]
    refused = post(client, api_key, provider="Acme Cloud", model=None)
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "MODEL_REQUIRED"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": None}, "provider"),
        ({"prompt_tokens": None}, "prompt_tokens"),
        ({"completion_tokens": -1}, "completion_tokens"),
        ({"cached_tokens": "many"}, "cached_tokens"),
    ],
)
def test_invalid_bodies_name_the_field(client: TestClient, api_key: str, changes: dict[str, Any], field: str) -> None:
    body = {**SEED_BODY, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    r = client.post("/v1/inference", json=body, headers=bearer(api_key))
    assert r.status_code == 400
    assert field in r.text


def test_write_needs_the_inference_scope(client: TestClient, make_key: MakeKey) -> None:
    key = make_key(scopes=["history:read"])
    r = client.post("/v1/inference", json=SEED_BODY, headers=bearer(key))
    assert r.status_code == 403
    assert r.json()["error_code"] == "INSUFFICIENT_SCOPE"


def test_missing_key_is_401(client: TestClient) -> None:
    assert client.post("/v1/inference", json=SEED_BODY).status_code == 401


# -- GET /v1/inference/history ---------------------------------------------------------------------


def test_history_needs_the_history_scope(client: TestClient, make_key: MakeKey) -> None:
    key = make_key(scopes=["inference:write"])
    r = client.get("/v1/inference/history", headers=bearer(key))
    assert r.status_code == 403
    assert "history:read" in r.json()["detail"]


def test_history_lists_records_of_all_the_accounts_keys(client: TestClient, make_key: MakeKey) -> None:
    prod = make_key(email="a@example.com", name="Production Key")
    dev = make_key(email="a@example.com", name="Dev Key", scopes=["inference:write"])
    other = make_key(email="b@example.com", name="Production Key")
    assert post(client, prod, model="gpt-4o", provider="OpenAI").status_code == 200
    assert post(client, dev, model="claude-sonnet-4.5", provider="Anthropic").status_code == 200
    assert post(client, other).status_code == 200
    r = client.get("/v1/inference/history", headers=bearer(prod))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["pagination"] == {"totalElements": 2, "totalPages": 1, "currentPage": 1, "limit": 100}
    rows = body["data"]
    assert {row["keyName"] for row in rows} == {"Production Key", "Dev Key"}
    for row in rows:
        assert set(row) >= {
            "id",
            "logDate",
            "keyName",
            "maskedKey",
            "provider",
            "model",
            "inputTokens",
            "outputTokens",
            "energyWh",
            "co2Grams",
        }
        assert MASKED_RE.match(row["maskedKey"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", row["logDate"])
        uuid.UUID(row["id"])
    dev_row = next(row for row in rows if row["keyName"] == "Dev Key")
    assert dev_row["model"] == "claude-sonnet-4.5"
    assert dev_row["modelId"] == "anthropic/claude-sonnet-4.5"
    assert dev_row["provider"] == "Anthropic"
    assert dev_row["inputTokens"] == 788
    assert dev_row["outputTokens"] == 312
    assert dev_row["maskedKey"] == "pm_live_..." + dev[-4:]
    # the other account sees only its own record
    assert client.get("/v1/inference/history", headers=bearer(other)).json()["pagination"]["totalElements"] == 1


def test_history_key_name_and_inclusive_date_filters(client: TestClient, make_key: MakeKey, clock: FrozenClock) -> None:
    a = make_key(name="A")
    b = make_key(name="B")
    days = ["2025-01-01T00:00:00", "2025-01-15T23:59:59", "2025-01-31T23:59:59", "2025-02-01T00:00:00"]
    for ts in days:
        clock.set(datetime.fromisoformat(ts).replace(tzinfo=UTC))
        assert post(client, a).status_code == 200
        assert post(client, b).status_code == 200

    def total(**params: str) -> int:
        r = client.get("/v1/inference/history", params=params, headers=bearer(a))
        assert r.status_code == 200, r.text
        return int(r.json()["pagination"]["totalElements"])

    assert total() == 8
    assert total(keyName="A") == 4
    assert total(keyName="nobody") == 0
    assert total(startDate="2025-01-01", endDate="2025-01-31") == 6  # both ends inclusive
    assert total(startDate="2025-01-31", endDate="2025-01-31", keyName="B") == 1
    assert total(startDate="2025-02-01") == 2
    assert total(endDate="2025-01-01") == 2
    assert total(startDate="2025-01-15T23:59:59Z", endDate="2025-01-31T23:59:59Z") == 4
    r = client.get("/v1/inference/history", params={"keyName": "A"}, headers=bearer(a))
    dates = [row["logDate"] for row in r.json()["data"]]
    assert dates == sorted(dates, reverse=True)  # newest first
    assert dates[0] == "2025-02-01T00:00:00Z"


@pytest.mark.parametrize(
    "params",
    [
        {"startDate": "2025-13-01"},
        {"endDate": "yesterday"},
        {"startDate": "2025-02-01", "endDate": "2025-01-01"},
        {"limit": "100001"},
        {"limit": "0"},
        {"page": "0"},
    ],
)
def test_history_rejects_bad_parameters(client: TestClient, api_key: str, params: dict[str, str]) -> None:
    r = client.get("/v1/inference/history", params=params, headers=bearer(api_key))
    assert r.status_code == 400
    assert r.json()["error_code"]


def _bulk_insert(state: AppState, n: int, *, account_key: str, start: datetime, key_name: str = "bulk") -> None:
    """Store ``n`` records for the account of ``account_key`` straight through the repository."""
    from powermeter.accounts.tables import api_keys
    from powermeter.infra.security import hash_api_key

    with state.db.begin() as conn:
        row = conn.execute(
            api_keys.select().where(api_keys.c.key_hash == hash_api_key(account_key, state.secret))
        ).one()
        rows = [
            {
                "id": str(uuid.UUID(int=i + 1)),
                "account_id": row.account_id,
                "key_id": row.id,
                "key_name": key_name,
                "masked_key": "pm_live_..." + row.last4,
                "log_date": start + timedelta(minutes=i),
                "provider": "OpenAI",
                "model": "gpt-4o",
                "model_id": "openai/gpt-4o",
                "input_tokens": i,
                "output_tokens": 300,
                "reasoning_tokens": 0,
                "cached_tokens": 0,
                "energy_wh": 0.5,
                "co2_grams": 0.2,
                "water_ml": 2.0,
                "tree_days": 0.003,
                "calculation_method": "PROVIDER_DEFAULT",
                "final_region": "US",
                "final_provider": "Microsoft Azure",
            }
            for i in range(n)
        ]
        repository.insert_records(conn, rows)


def test_pagination_pages_through_every_record_once(client: TestClient, api_key: str, state: AppState) -> None:
    _bulk_insert(state, 250, account_key=api_key, start=datetime(2025, 3, 1, tzinfo=UTC))
    seen: list[str] = []
    for page in (1, 2, 3):
        r = client.get("/v1/inference/history", params={"page": page, "limit": 100}, headers=bearer(api_key))
        body = r.json()
        assert body["pagination"] == {"totalElements": 250, "totalPages": 3, "currentPage": page, "limit": 100}
        seen.extend(row["id"] for row in body["data"])
    assert len(seen) == 250
    assert len(set(seen)) == 250
    beyond = client.get("/v1/inference/history", params={"page": 4}, headers=bearer(api_key)).json()
    assert beyond["data"] == []
    assert beyond["pagination"]["totalElements"] == 250


def test_large_pages_are_streamed_and_equal_the_small_pages(client: TestClient, api_key: str, state: AppState) -> None:
    _bulk_insert(state, 2500, account_key=api_key, start=datetime(2025, 3, 1, tzinfo=UTC))
    with client.stream("GET", "/v1/inference/history", params={"limit": 5000}, headers=bearer(api_key)) as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers  # sent in chunks as it is read from the database
        chunks = list(r.iter_bytes())
    body = json.loads(b"".join(chunks))
    assert body["status"] == "success"
    assert body["pagination"] == {"totalElements": 2500, "totalPages": 1, "currentPage": 1, "limit": 5000}
    streamed = [row["id"] for row in body["data"]]
    small: list[str] = []
    for page in range(1, 4):
        r2 = client.get("/v1/inference/history", params={"page": page, "limit": 1000}, headers=bearer(api_key))
        small.extend(row["id"] for row in r2.json()["data"])
    assert streamed == small
    # a streamed second page
    second = client.get("/v1/inference/history", params={"page": 2, "limit": 1500}, headers=bearer(api_key)).json()
    assert [row["id"] for row in second["data"]] == small[1500:]


# -- GET /v1/inference/summary -----------------------------------------------------------------------


def test_summary_groups_and_totals(client: TestClient, make_key: MakeKey, clock: FrozenClock) -> None:
    a = make_key(name="A")
    b = make_key(name="B")
    clock.set(datetime(2025, 6, 1, 10, tzinfo=UTC))
    e1 = post(client, a, provider="OpenAI", model="gpt-4o").json()["energy_wh"]
    clock.set(datetime(2025, 6, 2, 10, tzinfo=UTC))
    e2 = post(client, b, provider="OpenAI", model="gpt-4o").json()["energy_wh"]
    e3 = post(client, b, provider="Anthropic", model="claude-haiku-4.5").json()["energy_wh"]

    def groups(group_by: str, **params: str) -> dict[str, Any]:
        r = client.get("/v1/inference/summary", params={"groupBy": group_by, **params}, headers=bearer(a))
        assert r.status_code == 200, r.text
        return r.json()["data"]  # type: ignore[no-any-return]

    by_model = groups("model")
    per_model = {g["key"]: g["requests"] for g in by_model["groups"]}
    assert per_model == {"openai/gpt-4o": 2, "anthropic/claude-haiku-4.5": 1}
    assert by_model["totals"]["requests"] == 3
    assert by_model["totals"]["energyWh"] == pytest.approx(e1 + e2 + e3, abs=1e-5)
    assert {g["key"] for g in groups("provider")["groups"]} == {"OpenAI", "Anthropic"}
    assert {g["key"]: g["requests"] for g in groups("key")["groups"]} == {"A": 1, "B": 2}
    by_day = groups("day")
    assert [g["key"] for g in by_day["groups"]] == ["2025-06-01", "2025-06-02"]
    assert groups("day", startDate="2025-06-02")["totals"]["requests"] == 2
    bad = client.get("/v1/inference/summary", params={"groupBy": "color"}, headers=bearer(a))
    assert bad.status_code == 400


# -- the catalog ---------------------------------------------------------------------------------------


def test_models_lists_the_catalog(client: TestClient) -> None:
    r = client.get("/v1/inference/models")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["count"] == len(data["models"]) >= 290
    assert data["resolutionOrder"] == ["exact", "alias", "family", "pattern", "provider_fallback"]
    gpt4o = next(m for m in data["models"] if m["id"] == "openai/gpt-4o")
    assert gpt4o["architecture"]["totalParamsB"] == 440
    assert gpt4o["architecture"]["activeParamsB"] == {"min": 44, "max": 132}
    assert gpt4o["source"]


def test_models_lists_every_constant_with_a_public_source(client: TestClient) -> None:
    from powermeter.methodology import ai_inference as ai

    constants = {c["name"]: c for c in client.get("/v1/inference/models").json()["data"]["constants"]}
    assert constants["prefill_token_ratio"]["value"] == ai.PREFILL_TOKEN_RATIO
    assert constants["tree_absorption"]["value"] == ai.TREE_G_CO2_PER_DAY
    assert constants["gpu_energy_alpha"]["unit"] == "Wh/token/GPU/B-param"
    for c in constants.values():  # sources are public references, never a file on somebody's machine
        assert c["source"], c
        assert "/work/" not in c["source"], c
        assert "/home/" not in c["source"], c


def test_model_resolution_shows_how_an_id_resolves(client: TestClient) -> None:
    r = client.get("/v1/inference/models/groq/llama-3.3-70b-versatile")
    assert r.status_code == 200
    res = r.json()["data"]["resolution"]
    assert res["modelId"] == "meta-llama/llama-3.3-70b-instruct"
    assert res["match"] == "alias"
    free = client.get("/v1/inference/models/openai/gpt-oss-120b:free").json()["data"]["resolution"]
    assert (free["modelId"], free["variant"], free["match"]) == ("openai/gpt-oss-120b", "free", "exact")
    hinted = client.get("/v1/inference/models/gpt-9", params={"provider": "OpenAI"}).json()["data"]["resolution"]
    assert hinted["match"] == "provider_fallback"
    assert hinted["estimated"] is True
    missing = client.get("/v1/inference/models/acme/mystery")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "UNKNOWN_MODEL"


# -- the per-day rollup ---------------------------------------------------------------------------------


def test_rollup_counts_and_sums_equal_the_records(
    client: TestClient, make_key: MakeKey, clock: FrozenClock, state: AppState
) -> None:
    from powermeter.inference import service

    a = make_key(name="A")
    b = make_key(name="B")
    for i, ts in enumerate(
        ["2025-03-01T00:00:00", "2025-03-01T23:59:59", "2025-03-02T12:00:00", "2025-03-05T06:00:00"]
    ):
        clock.set(datetime.fromisoformat(ts).replace(tzinfo=UTC))
        assert (
            post(client, a if i % 2 else b, provider="OpenAI", model="gpt-4o", prompt_tokens=100 * i).status_code == 200
        )
        assert post(client, b, provider="Mistral", model="mistral-large-2512").status_code == 200
    _bulk_insert(state, 300, account_key=a, start=datetime(2025, 3, 1, 22, tzinfo=UTC), key_name="A")
    acct = client.get("/v1/inference/history", headers=bearer(a)).json()["data"][0]
    assert acct  # the account has records
    with state.db.begin() as conn:
        from powermeter.accounts.tables import api_keys
        from powermeter.infra.security import hash_api_key

        account_id = (
            conn.execute(api_keys.select().where(api_keys.c.key_hash == hash_api_key(a, state.secret))).one().account_id
        )
        bounds = [None, "2025-03-01", "2025-03-02", "2025-03-05", "2025-03-06"]
        for start_s in bounds:
            for end_s in bounds:
                start = service.parse_date(start_s, "s", end=False)
                end = service.parse_date(end_s, "e", end=True)
                if start is not None and end is not None and start >= end:
                    continue
                for key_name in (None, "A", "B", "C"):
                    q = service.HistoryQuery(account_id, start, end, key_name, 1, 100)
                    raw = repository.count_history(conn, account_id, start, end, key_name)
                    assert service.whole_days(start, end) is not None
                    assert service.count(conn, q) == raw, (start_s, end_s, key_name)
                for group_by in service.GROUP_BY:
                    days = service.whole_days(start, end)
                    assert days is not None
                    fast = repository.summary_days(conn, account_id, days[0], days[1], group_by)
                    slow = repository.summary(conn, account_id, start, end, group_by)
                    assert [str(r[0]) for r in fast] == [str(r[0]) for r in slow]
                    for rf, rs in zip(fast, slow, strict=True):
                        assert tuple(rf[1:4]) == tuple(rs[1:4])
                        assert tuple(rf[4:]) == pytest.approx(tuple(rs[4:]))
