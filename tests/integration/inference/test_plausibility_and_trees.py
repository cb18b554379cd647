"""Issue 15 items 10 and 11: the tree-day constant is cited and shown in the audit; closed-model
estimates are checked against published per-query figures, with the range stated."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from powermeter.methodology import ai_inference as ai
from tests.integration.inference.test_inference_api import post


def test_tree_days_use_the_cited_constant_shown_in_the_audit(client: TestClient, api_key: str) -> None:
    r = post(client, api_key, provider="OpenAI", model="gpt-4o", prompt_tokens=100, completion_tokens=300)
    assert r.status_code == 200, r.text
    body = r.json()
    per_day = body["audit"]["treeGramsCo2PerDay"]
    assert per_day == pytest.approx(21.77 * 1000 / 365, abs=1e-6)  # 48 lb/yr, Arbor Day Foundation
    assert "Arbor Day" in body["audit"]["treeSource"]
    assert "48 lb" in body["audit"]["treeSource"]
    assert body["tree_days"] == pytest.approx(body["co2_grams"] / per_day, rel=1e-4)
    assert pytest.approx(59.6438, abs=1e-4) == ai.TREE_G_CO2_PER_DAY


def _energy(client: TestClient, api_key: str, model: str) -> dict:  # type: ignore[type-arg]
    r = post(client, api_key, provider="OpenAI", model=model, prompt_tokens=0, completion_tokens=300)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_pro_reasoning_models_stay_within_the_published_bound(client: TestClient, api_key: str) -> None:
    gpt4o = _energy(client, api_key, "gpt-4o")
    bound = ai.PLAUSIBLE_MAX_RATIO * ai.REFERENCE_QUERY_WH * 300 / ai.REFERENCE_QUERY_OUTPUT_TOKENS  # 3.6 Wh
    for model in ("o1-pro", "o3-pro"):
        body = _energy(client, api_key, model)
        assert body["energy_wh"] <= bound, (model, body["energy_wh"])  # was 88 Wh (price-parity sizing)
        assert body["energy_wh"] <= 2 * gpt4o["energy_wh"], model
        p = body["plausibility"]
        assert p["within_bound"] is True
        assert p["ratio_to_published"] <= ai.PLAUSIBLE_MAX_RATIO
        assert p["published_query_wh"] == {
            "google_gemini_median": 0.24,
            "openai_chatgpt_average": 0.34,
            "epoch_gpt4o": 0.3,
        }
        assert p["reference_query_wh"]["min"] < p["reference_query_wh"]["value"] < p["reference_query_wh"]["max"]
        # the uncertainty range of this request is stated
        rng = body["ranges"]["energy_wh"]
        assert rng["min"] < body["energy_wh"] < rng["max"]
        assert "test-time-compute-variant" in body["model"]["warnings"]
        assert "estimate-above-published-per-query-range" not in body["warnings"]


def test_an_estimate_far_above_the_published_figures_is_flagged(client: TestClient, api_key: str) -> None:
    body = _energy(client, api_key, "gpt-5-pro")  # EcoLogits' own price-parity size (12× GPT-5)
    p = body["plausibility"]
    assert p["ratio_to_published"] > ai.PLAUSIBLE_MAX_RATIO
    assert p["within_bound"] is False
    assert "estimate-above-published-per-query-range" in body["warnings"]
