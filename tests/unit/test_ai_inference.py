"""AI inference methodology: parity with EcoLogits, prefill/cache/reasoning/latency extensions,
ranges, tree-days, and the site (calculationMethod) logic."""

from __future__ import annotations

import math

import pytest
from ecologits.electricity_mix_repository import electricity_mixes
from ecologits.impacts.llm import compute_llm_impacts
from ecologits.tracers.utils import PROVIDER_CONFIG_MAP, llm_impacts
from ecologits.utils.range_value import RangeValue
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.data.ai_providers import (
    SiteResolver,
    load_ecologits_mixes,
    load_providers,
)
from powermeter.data.locations import load_locations
from powermeter.data.models import CatalogEntry, load_catalog
from powermeter.methodology.ai_inference import (
    CACHED_TOKEN_RATIO,
    CALC_EXACT_REGION,
    CALC_GLOBAL_AVERAGE,
    CALC_PROVIDER_DEFAULT,
    PREFILL_TOKEN_RATIO,
    TREE_G_CO2_PER_DAY,
    ModelArchitecture,
    SiteFactors,
    calculation_method,
    count_output_tokens,
    estimate_inference,
    gpu_count,
    observed_ttft_s,
    prepare_model,
    tree_days,
    tree_message,
)

CATALOG = load_catalog()
PROVIDERS = load_providers()
SITES = SiteResolver(PROVIDERS, load_locations(), load_ecologits_mixes())

EL_ENTRIES = [e for e in CATALOG.all() if e.ecologits is not None]


def _ecologits_site(ecologits_provider: str) -> SiteFactors:
    """Our data-centre figures for an EcoLogits provider, with EcoLogits' own mix for its zone."""
    ours = next(p for p in PROVIDERS.all() if p.ecologits == ecologits_provider)
    zone = PROVIDER_CONFIG_MAP[ecologits_provider].datacenter_location
    mix = electricity_mixes.find_electricity_mix(zone)
    assert mix is not None
    eff = ours.efficiency
    return SiteFactors(
        pue_min=eff.pue[0],
        pue_max=eff.pue[1],
        wue_site_min_l_per_kwh=eff.wue_l_per_kwh[0],
        wue_site_max_l_per_kwh=eff.wue_l_per_kwh[1],
        intensity_g_per_kwh=mix.gwp * 1000,
        wue_offsite_l_per_kwh=mix.wue,
    )


def _bounds(v: float | RangeValue) -> tuple[float, float]:
    return (v.min, v.max) if isinstance(v, RangeValue) else (v, v)


def _assert_close(ours_lo: float, ours_hi: float, theirs: float | RangeValue, scale: float) -> None:
    lo, hi = _bounds(theirs)
    assert ours_lo == pytest.approx(lo * scale, rel=1e-12)
    assert ours_hi == pytest.approx(hi * scale, rel=1e-12)


# -- parity with EcoLogits -----------------------------------------------------------------------


def test_enough_catalog_models_are_known_to_ecologits() -> None:
    assert len(EL_ENTRIES) >= 10
    assert {e.ecologits[0] for e in EL_ENTRIES if e.ecologits} >= {
        "openai",
        "anthropic",
        "google_genai",
        "mistralai",
        "cohere",
        "huggingface_hub",
    }


def test_provider_defaults_equal_ecologits_configuration() -> None:
    for key, cfg in PROVIDER_CONFIG_MAP.items():
        ours = next(p for p in PROVIDERS.all() if p.ecologits == key)
        assert ours.efficiency.pue == _bounds(cfg.datacenter_pue), key
        assert ours.efficiency.wue_l_per_kwh == _bounds(cfg.datacenter_wue), key
        usual = load_locations().resolve(ours.usual_region or "")
        assert usual is not None
        alpha3 = {a.upper() for a in usual.aliases}
        assert cfg.datacenter_location in alpha3, key


@pytest.mark.parametrize("entry", EL_ENTRIES, ids=lambda e: e.id)
@pytest.mark.parametrize("output_tokens", [1, 312, 4000])
def test_decode_only_equals_ecologits(entry: CatalogEntry, output_tokens: int) -> None:
    assert entry.ecologits is not None
    provider, name = entry.ecologits
    site = _ecologits_site(provider)
    theirs = llm_impacts(provider, name, output_tokens, request_latency=math.inf)
    assert theirs.energy is not None
    assert theirs.gwp is not None
    assert theirs.wcf is not None
    ours = estimate_inference(entry.profile, site, prompt_tokens=0, completion_tokens=output_tokens)
    _assert_close(ours.energy_wh.min or 0, ours.energy_wh.max or 0, theirs.energy.value, 1000)
    _assert_close(ours.co2_g.min or 0, ours.co2_g.max or 0, theirs.gwp.value, 1000)
    _assert_close(ours.water_ml.min or 0, ours.water_ml.max or 0, theirs.wcf.value, 1000)


@pytest.mark.parametrize("entry", EL_ENTRIES[:12], ids=lambda e: e.id)
def test_full_request_latency_caps_like_ecologits(entry: CatalogEntry) -> None:
    assert entry.ecologits is not None
    provider, name = entry.ecologits
    site = _ecologits_site(provider)
    theirs = llm_impacts(provider, name, 500, request_latency=1.5)
    assert theirs.energy is not None
    assert theirs.gwp is not None
    ours = estimate_inference(entry.profile, site, prompt_tokens=0, completion_tokens=500, request_latency_s=1.5)
    _assert_close(ours.energy_wh.min or 0, ours.energy_wh.max or 0, theirs.energy.value, 1000)
    _assert_close(ours.co2_g.min or 0, ours.co2_g.max or 0, theirs.gwp.value, 1000)
    assert ours.latency_capped


@settings(max_examples=150, deadline=None)
@given(
    total=st.floats(1, 3000),
    active_share=st.floats(0.02, 1.0),
    spread=st.floats(1.0, 3.0),
    tokens=st.integers(0, 20_000),
    pue=st.floats(1.0, 2.0),
    wue=st.floats(0.0, 2.0),
    gwp=st.floats(0.0, 1.0),
    ewif=st.floats(0.0, 20.0),
    tps=st.one_of(st.none(), st.floats(1, 500)),
    ttft=st.one_of(st.none(), st.floats(0, 30)),
)
def test_closed_form_equals_compute_llm_impacts_everywhere(
    total: float,
    active_share: float,
    spread: float,
    tokens: int,
    pue: float,
    wue: float,
    gwp: float,
    ewif: float,
    tps: float | None,
    ttft: float | None,
) -> None:
    active_lo = total * active_share / spread
    active_hi = total * active_share
    arch = ModelArchitecture("moe", total, total, active_lo, active_hi, tps, ttft)
    site = SiteFactors(pue, pue, wue, wue, gwp * 1000, ewif)
    ours = estimate_inference(prepare_model(arch), site, prompt_tokens=0, completion_tokens=tokens)
    active: float | RangeValue = active_lo if active_lo == active_hi else RangeValue(min=active_lo, max=active_hi)
    theirs = compute_llm_impacts(
        model_active_parameter_count=active,
        model_total_parameter_count=total,
        output_token_count=tokens,
        if_electricity_mix_adpe=0.0,
        if_electricity_mix_pe=0.0,
        if_electricity_mix_gwp=gwp,
        if_electricity_mix_wue=ewif,
        datacenter_pue=pue,
        datacenter_wue=wue,
        tps=tps,
        ttft=ttft,
    )
    _assert_close(ours.energy_wh.min or 0, ours.energy_wh.max or 0, theirs.energy.value, 1000)
    _assert_close(ours.co2_g.min or 0, ours.co2_g.max or 0, theirs.gwp.value, 1000)
    _assert_close(ours.water_ml.min or 0, ours.water_ml.max or 0, theirs.wcf.value, 1000)


def test_gpu_counts_match_ecologits_rounding() -> None:
    # 16-bit weights ×1.2 on 80 GB GPUs, rounded up to a power of two (ai_anchors.md §1.2)
    assert [gpu_count(p) for p in (8, 70.55, 123, 235, 405.85, 440, 671, 1000)] == [1, 4, 4, 8, 16, 16, 32, 32]


# -- published per-query figures -----------------------------------------------------------------


def _gpt4o_request(prompt: int, output: int, cached: int = 0) -> tuple[float, float, float]:
    res = CATALOG.resolve("openai/gpt-4o")
    assert res is not None
    site = SITES.resolve("OpenAI", None)
    est = estimate_inference(
        res.entry.profile, site.factors, prompt_tokens=prompt, completion_tokens=output, cached_tokens=cached
    )
    return est.energy_wh.value, est.energy_wh.min or 0, est.energy_wh.max or 0


@pytest.mark.parametrize("prompt_tokens", [0, 200, 1000])
def test_gpt4o_class_300_token_request_lands_in_the_published_range(prompt_tokens: int) -> None:
    # Published per-query estimates for GPT-4o-class chat: 0.24-0.43 Wh (Google, OpenAI, Epoch,
    # Jegham), EcoLogits 0.45-0.75 Wh; the acceptance band is 0.2-1.2 Wh.
    value, lo, hi = _gpt4o_request(prompt_tokens, 300)
    for v in (value, lo, hi):
        assert 0.2 <= v <= 1.2


def test_seed_example_request_is_plausible() -> None:
    res = CATALOG.resolve("gemini-3-pro", vendor_hint="google")
    assert res is not None
    assert res.entry.id == "google/gemini-3-pro-preview"
    site = SITES.resolve("Google", None)
    est = estimate_inference(
        res.entry.profile,
        site.factors,
        prompt_tokens=788,
        completion_tokens=312,
        observed_ttft_s=observed_ttft_s(1710000000000, 1710000010000),
    )
    assert 0.5 < est.energy_wh.value < 10
    assert est.co2_g.value > 0
    assert est.water_ml.value > 0
    assert (est.energy_wh.min or 0) < est.energy_wh.value < (est.energy_wh.max or 0)


# -- prompt, cache, reasoning, latency --------------------------------------------------------------

LLAMA70 = CATALOG.resolve("meta-llama/llama-3.1-70b-instruct")
assert LLAMA70 is not None
US_SITE = SITES.resolve("OpenAI", None).factors


def _energy(
    prompt_tokens: int = 0, completion_tokens: int = 312, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> float:
    assert LLAMA70 is not None
    return estimate_inference(
        LLAMA70.entry.profile,
        US_SITE,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
    ).energy_wh.value


@settings(max_examples=100, deadline=None)
@given(prompt=st.integers(0, 200_000), extra=st.integers(1, 50_000), output=st.integers(0, 10_000))
def test_energy_grows_with_prompt_tokens(prompt: int, extra: int, output: int) -> None:
    assert _energy(prompt_tokens=prompt + extra, completion_tokens=output) > _energy(
        prompt_tokens=prompt, completion_tokens=output
    )


@settings(max_examples=100, deadline=None)
@given(prompt=st.integers(1, 200_000), data=st.data())
def test_cached_tokens_lower_the_estimate(prompt: int, data: st.DataObject) -> None:
    cached = data.draw(st.integers(1, prompt))
    fewer = data.draw(st.integers(0, cached - 1))
    with_cache = _energy(prompt_tokens=prompt, cached_tokens=cached)
    assert with_cache < _energy(prompt_tokens=prompt, cached_tokens=fewer)
    # a cached prompt still costs more than no prompt at all
    assert with_cache > _energy(prompt_tokens=0)


def test_prefill_costs_the_documented_fraction_of_decode() -> None:
    assert LLAMA70 is not None
    est = estimate_inference(LLAMA70.entry.profile, US_SITE, prompt_tokens=8000, completion_tokens=312)
    per_prompt_token = est.prefill_wh.value / 8000
    per_output_token = est.decode_wh.value / 312
    assert per_prompt_token == pytest.approx(PREFILL_TOKEN_RATIO * per_output_token, rel=1e-12)
    cached = estimate_inference(
        LLAMA70.entry.profile, US_SITE, prompt_tokens=8000, cached_tokens=8000, completion_tokens=312
    )
    assert cached.prefill_wh.value == pytest.approx(CACHED_TOKEN_RATIO * est.prefill_wh.value, rel=1e-12)
    # parts add up to the total
    total = est.decode_wh.value + est.prefill_wh.value + est.server_wh.value
    assert total == pytest.approx(est.energy_wh.value, rel=1e-12)
    # RAG-style requests: 8k prompt tokens outweigh 312 output tokens (ai_anchors.md §8)
    assert est.prefill_wh.value > est.decode_wh.value


def test_reasoning_tokens_count_once() -> None:
    included = _energy(completion_tokens=300, reasoning_tokens=200)
    assert included == _energy(completion_tokens=300)
    assert count_output_tokens(300, 200, reasoning_in_completion=True) == 300
    assert count_output_tokens(300, 200, reasoning_in_completion=False) == 500
    # a reasoning count above the completion count cannot be part of it
    assert count_output_tokens(100, 400, reasoning_in_completion=True) == 500
    assert LLAMA70 is not None
    separate = estimate_inference(
        LLAMA70.entry.profile,
        US_SITE,
        prompt_tokens=0,
        completion_tokens=300,
        reasoning_tokens=200,
        reasoning_in_completion=False,
    )
    assert separate.output_tokens == 500
    assert separate.energy_wh.value == pytest.approx(_energy(completion_tokens=500), rel=1e-12)


def test_observed_ttft_bounds_the_modelled_latency() -> None:
    res = CATALOG.resolve("openai/gpt-4o")  # tps 74, ttft 0.61 s
    assert res is not None
    profile = res.entry.profile

    def est(ttft: float | None) -> tuple[float, float, bool]:
        e = estimate_inference(profile, US_SITE, prompt_tokens=100, completion_tokens=300, observed_ttft_s=ttft)
        return e.latency_s.value, e.energy_wh.value, e.latency_capped

    lat0, e0, capped0 = est(None)
    assert lat0 == pytest.approx(0.61 + 300 / 74)
    assert not capped0
    lat_fast, e_fast, capped_fast = est(0.2)  # the client saw the first token sooner than modelled
    assert lat_fast == pytest.approx(0.2 + 300 / 74)
    assert e_fast < e0
    assert capped_fast
    lat_slow, e_slow, capped_slow = est(10.0)  # network/queueing included: not GPU time, no change
    assert (lat_slow, e_slow, capped_slow) == (lat0, e0, False)


def test_observed_ttft_from_timestamps() -> None:
    assert observed_ttft_s(1710000000000, 1710000010000) == 10.0
    assert observed_ttft_s(None, 1) is None
    assert observed_ttft_s(5, 1) is None  # first token before start: not measurable


def test_ranges_for_closed_models_and_points_for_open_ones() -> None:
    closed = CATALOG.resolve("anthropic/claude-sonnet-4.5")
    open_ = CATALOG.resolve("qwen/qwen3-235b-a22b")
    assert closed is not None
    assert open_ is not None
    site = SITES.resolve("Together", None).factors  # generic efficiency: a PUE/WUE range
    c = estimate_inference(closed.entry.profile, site, prompt_tokens=500, completion_tokens=300)
    for est in (c.energy_wh, c.co2_g, c.water_ml):
        assert est.min is not None
        assert est.max is not None
        assert est.min < est.value < est.max
        assert est.value == pytest.approx((est.min + est.max) / 2)
    point_site = SITES.resolve("OpenAI", None).factors  # scalar PUE/WUE
    o = estimate_inference(open_.entry.profile, point_site, prompt_tokens=500, completion_tokens=300)
    for est in (o.energy_wh, o.co2_g, o.water_ml):
        assert est.min == est.value == est.max


def test_water_formula_by_hand() -> None:
    arch = ModelArchitecture("dense", 8, 8, 8, 8, tps=100.0, ttft_s=0.0)
    site = SiteFactors(1.5, 1.5, 0.5, 0.5, 400.0, 3.0)
    est = estimate_inference(prepare_model(arch), site, prompt_tokens=0, completion_tokens=1000)
    f_e = 1.1665273170451914e-06 * math.exp(-0.011205921025579175 * 64) * 8 + 4.052928146734005e-05
    e_it_wh = 1000 * f_e + (10.0 / 3600) * 1.2 * (1 / 8) / 64 * 1000
    assert est.energy_wh.value == pytest.approx(1.5 * e_it_wh, rel=1e-12)
    assert est.water_ml.value == pytest.approx(e_it_wh * (0.5 + 1.5 * 3.0), rel=1e-12)
    assert est.co2_usage_g.value == pytest.approx(1.5 * e_it_wh / 1000 * 400.0, rel=1e-12)
    embodied_kg = 10.0 * ((1 / 8) * 5700 + 273) / (3 * 365 * 24 * 3600 * 64)
    assert est.co2_embodied_g.value == pytest.approx(embodied_kg * 1000, rel=1e-12)


def test_negative_token_counts_are_rejected() -> None:
    assert LLAMA70 is not None
    with pytest.raises(ValueError, match="non-negative"):
        estimate_inference(LLAMA70.entry.profile, US_SITE, prompt_tokens=-1, completion_tokens=1)


def test_invalid_architectures_and_sites_are_rejected() -> None:
    with pytest.raises(ValueError):
        ModelArchitecture("dense", 0, 0, 0, 0)
    with pytest.raises(ValueError):
        ModelArchitecture("moe", 10, 10, 20, 20)
    with pytest.raises(ValueError):
        ModelArchitecture("sparse", 10, 10, 1, 1)
    with pytest.raises(ValueError):
        SiteFactors(0.9, 1.0, 0.1, 0.1, 100, 1)


# -- tree-days and the message ----------------------------------------------------------------------


def test_tree_absorption_figure() -> None:
    # 48 lb ≈ 21.77 kg CO2 per mature tree per year (Arbor Day Foundation) → 59.6 g/day
    assert pytest.approx(21770 / 365) == TREE_G_CO2_PER_DAY
    assert tree_days(TREE_G_CO2_PER_DAY) == pytest.approx(1.0)
    assert tree_days(0.298) == pytest.approx(0.005, abs=1e-4)


def test_message_matches_the_seed_wording() -> None:
    assert tree_message(0.005) == "This request cost the equivalent of 0.0050 days of a tree's carbon absorption."
    assert tree_message(0.000123) == "This request cost the equivalent of 0.0001 days of a tree's carbon absorption."


# -- calculationMethod ---------------------------------------------------------------------------


def test_calculation_method_order() -> None:
    assert calculation_method(True, True) == CALC_EXACT_REGION
    assert calculation_method(True, False) == CALC_EXACT_REGION
    assert calculation_method(False, True) == CALC_PROVIDER_DEFAULT
    assert calculation_method(False, False) == CALC_GLOBAL_AVERAGE


def test_detected_cloud_region_is_exact_region() -> None:
    site = SITES.resolve("OpenAI", "us-west-1")
    assert site.audit_dict() == {
        "calculationMethod": "EXACT_REGION",
        "finalRegion": "us-west-1",
        "finalProvider": "AWS",
    }
    assert site.location.code == "aws:us-west-1"
    assert site.factors.intensity_g_per_kwh == load_locations().resolve("aws:us-west-1").intensity_g_per_kwh  # type: ignore[union-attr]
    assert site.factors.pue_min == 1.15  # AWS's published PUE for a named AWS region


def test_provider_cloud_disambiguates_a_bare_region() -> None:
    site = SITES.resolve("Google", "us-central1")
    assert site.calculation_method == CALC_EXACT_REGION
    assert site.final_provider == "Google Cloud"
    assert site.location.provider == "gcp"


def test_unknown_region_falls_back_to_the_provider_default() -> None:
    for region in (None, "", "mars-north-1"):
        site = SITES.resolve("Mistral", region)
        assert site.calculation_method == CALC_PROVIDER_DEFAULT
        assert site.final_region == "SE"
        assert site.factors.pue_min == 1.16
        assert site.water_zone == "SWE"


def test_unknown_provider_or_aggregator_is_global_average() -> None:
    for provider in ("OpenRouter", "Some Startup", None):
        site = SITES.resolve(provider, None)
        assert site.calculation_method == CALC_GLOBAL_AVERAGE
        assert site.final_region == "WORLD"
        assert site.water_zone == "WOR"
        assert site.factors.intensity_g_per_kwh == load_locations().resolve("WORLD").intensity_g_per_kwh  # type: ignore[union-attr]


def test_a_country_code_is_an_exact_region_with_that_countrys_water() -> None:
    site = SITES.resolve("DeepSeek", "DE")
    assert site.calculation_method == CALC_EXACT_REGION
    assert site.water_zone == "DEU"
    assert site.factors.wue_offsite_l_per_kwh == pytest.approx(1.947)


def test_cleaner_grid_gives_less_co2_for_the_same_energy() -> None:
    assert LLAMA70 is not None
    profile = LLAMA70.entry.profile
    sweden_site = SITES.resolve("Mistral", None).factors
    world_site = SITES.resolve("OpenRouter", None).factors
    sweden = estimate_inference(profile, sweden_site, prompt_tokens=0, completion_tokens=300)
    world = estimate_inference(profile, world_site, prompt_tokens=0, completion_tokens=300)
    assert sweden.co2_usage_g.value < world.co2_usage_g.value / 5
