"""Energy, carbon and water of one LLM inference request.

The skeleton is EcoLogits' LLM-inference methodology (version 0.11.3, ``ecologits/impacts/llm.py``,
MPL-2.0; methodology text CC BY-SA 4.0, https://ecologits.ai/latest/methodology/llm_inference/),
re-implemented in closed form so that one estimate costs a few microseconds instead of the
~140-400 µs of EcoLogits' DAG. Where the inputs of a request allow, it goes further than EcoLogits:

* prompt (prefill) tokens cost ``PREFILL_TOKEN_RATIO`` of an output token, cached prompt tokens
  ``CACHED_TOKEN_RATIO`` of an uncached prompt token (EcoLogits ignores both, issue #183);
* reasoning tokens count as output tokens exactly once;
* the client-observed time to first token caps the model's time-to-first-token.

With zero prompt tokens, no observed latency and the same model, data-centre and grid factors,
every number equals EcoLogits' ``compute_llm_impacts`` (tests/unit/test_ai_inference.py checks it).

Equations (per GPU, B = batch size, P = parameters in billions, N = GPUs):

    f_E(P_act)  = α·exp(β·B)·P_act + γ                       Wh per output token per GPU
    N           = 2^ceil(log2(ceil(1.2 · P_total · Q/8 / M_gpu)))
    E_decode    = N · n_out · f_E                                (IT, Wh)
    E_prefill   = N · f_E · κ · (n_uncached + γ_c · n_cached)    (IT, Wh)
    ΔT          = min(TTFT, TTFT_observed) + n_out / tps        (or n_out · f_L(P_act) without tps)
    ΔT          = min(ΔT, request_latency)                       when the full latency is known
    E_server    = ΔT/3600 · P_server · (N / N_server) / B        (IT, kWh with P_server in kW)
    E           = PUE · (E_decode + E_prefill + E_server)
    CO2_usage   = E · CI_grid
    CO2_embod   = ΔT · ((N / N_server)·I_server + N·I_gpu) / (B · lifetime)
    water       = E_IT · (WUE_site + PUE · WUE_offsite)

Closed models carry parameter ranges: as in EcoLogits, the calculation runs once with the lower
bounds (parameters, PUE, WUE) and once with the upper bounds; the central value is the midpoint of
the two, which is EcoLogits' ``RangeValue.mean``.

Pure: no I/O, no settings, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from powermeter.methodology.units import (
    G_PER_KG,
    ML_PER_L,
    MS_PER_SECOND,
    SECONDS_PER_HOUR,
    WH_PER_KWH,
    Estimate,
    Factor,
)

METHODOLOGY_VERSION = "ai-inference/1 (EcoLogits 0.11.3 equations + prefill/cache/latency extensions)"

_EL = "EcoLogits 0.11.3, ecologits/impacts/llm.py (MPL-2.0)"

# --- EcoLogits 0.11.3 constants (ecologits/impacts/llm.py) -----------------------------------
GPU_ENERGY_ALPHA = 1.1665273170451914e-06  # Wh/token/GPU per billion active parameters
GPU_ENERGY_BETA = -0.011205921025579175  # per request in the batch
GPU_ENERGY_GAMMA = 4.052928146734005e-05  # Wh/token/GPU
LATENCY_ALPHA = 0.0006785088094353663  # s/token per billion active parameters
LATENCY_BETA = 0.0003119310311688259  # s/token per request in the batch
LATENCY_GAMMA = 0.019473717579473387  # s/token
MODEL_QUANTIZATION_BITS = 16
GPU_MEMORY_GB = 80.0  # NVIDIA H100 80 GB
GPU_EMBODIED_KG_CO2E = 273.0
SERVER_GPUS = 8
SERVER_POWER_KW = 1.2  # p5.48xlarge-like node without its GPUs (BoaviztAPI)
SERVER_EMBODIED_KG_CO2E = 5700.0
HARDWARE_LIFESPAN_S = 3 * 365 * 24 * 60 * 60
BATCH_SIZE = 64
MEMORY_OVERHEAD = 1.2

# --- Extensions beyond EcoLogits (docs/methodology.md, "AI inference") -----------------------
PREFILL_TOKEN_RATIO = 0.1
"""Energy of one uncached prompt token ÷ energy of one output token (evidence range 0.03-0.3)."""
CACHED_TOKEN_RATIO = 0.1
"""Energy of one cached prompt token ÷ energy of one uncached prompt token (evidence range 0-0.25)."""

TREE_KG_CO2_PER_YEAR = 21.77
"""CO2 absorbed by one mature tree in a year: 48 lb ≈ 21.77 kg (Arbor Day Foundation figure).

Chosen over Green Algorithms' 11 kg/yr (30.1 g/day, an average tree over its life) and the US EPA's
urban seedling (0.060 t per 10 years ≈ 16.4 g/day) because a "tree-day" reads as a day of a grown
tree, and 48 lb is the figure most public calculators quote; seed 004's example (1.22 g → 0.005
tree-days ≈ 244 g/day) matches no published figure. docs/methodology.md, "Tree-days"."""
TREE_G_CO2_PER_DAY = TREE_KG_CO2_PER_YEAR * G_PER_KG / 365.0
TREE_SOURCE = (
    "48 lb (21.77 kg) CO2 per mature tree per year, Arbor Day Foundation, ÷ 365 = 59.64 g/day; "
    "illustrative: sequestration varies ~10× with species, age and climate"
)

# --- Plausibility of closed-model estimates (issue 15; docs/methodology.md) -----------------------
#: Published whole-request figures for frontier chat models (Wh per typical text query).
PUBLISHED_QUERY_WH: tuple[tuple[str, float, str], ...] = (
    ("google_gemini_median", 0.24, "Google, arXiv 2508.15734 (Aug 2025): median Gemini Apps text prompt, May 2025"),
    (
        "openai_chatgpt_average",
        0.34,
        "OpenAI, S. Altman, 'The Gentle Singularity' (10 Jun 2025): average ChatGPT query",
    ),
    ("epoch_gpt4o", 0.3, "Epoch AI, 'How much energy does ChatGPT use?' (Feb 2025): GPT-4o, 500 output tokens"),
)
REFERENCE_QUERY_OUTPUT_TOKENS = 500
"""The one published figure with a token count (Epoch AI, GPT-4o): 0.3 Wh for 500 output tokens."""
REFERENCE_QUERY_WH = 0.3
PLAUSIBLE_MAX_RATIO = 20.0
"""A closed model's estimate for the reference query above 20× the published figure is flagged:
bottom-up estimates of production serving overstate by 4-20× (Oviedo et al., Microsoft, arXiv
2509.20241), so 20× is the widest gap the evidence explains."""

FACTORS: tuple[Factor, ...] = (
    Factor("gpu_energy_alpha", GPU_ENERGY_ALPHA, "Wh/token/GPU/B-param", _EL),
    Factor("gpu_energy_beta", GPU_ENERGY_BETA, "1/request", _EL),
    Factor("gpu_energy_gamma", GPU_ENERGY_GAMMA, "Wh/token/GPU", _EL),
    Factor("latency_alpha", LATENCY_ALPHA, "s/token/B-param", _EL),
    Factor("latency_beta", LATENCY_BETA, "s/token/request", _EL),
    Factor("latency_gamma", LATENCY_GAMMA, "s/token", _EL),
    Factor("batch_size", BATCH_SIZE, "requests", _EL),
    Factor("quantization_bits", MODEL_QUANTIZATION_BITS, "bit", _EL),
    Factor("gpu_memory", GPU_MEMORY_GB, "GB", _EL + " (NVIDIA H100 80GB)"),
    Factor("server_power", SERVER_POWER_KW, "kW", _EL + " (8-GPU p5.48xlarge-like node, BoaviztAPI)"),
    Factor("server_gpus", SERVER_GPUS, "GPU", _EL),
    Factor("gpu_embodied", GPU_EMBODIED_KG_CO2E, "kgCO2e/GPU", _EL),
    Factor("server_embodied", SERVER_EMBODIED_KG_CO2E, "kgCO2e/server", _EL + " (BoaviztAPI p5.48xlarge)"),
    Factor("hardware_lifespan", HARDWARE_LIFESPAN_S, "s", _EL + " (3 years)"),
    Factor(
        "prefill_token_ratio",
        PREFILL_TOKEN_RATIO,
        "output-token equivalents",
        "powermeter assumption, central value of 0.03-0.3: InferenceMAX DeepSeek-R1 8k/1k vs 1k/8k fit "
        "(≈0.11, SemiAnalysis InferenceMAX), first-principles prefill FLOP cost (0.15-0.2: 2·N FLOPs per token, "
        "compute-bound, vs memory-bound decoding), Epoch AI upper bound (0.4, 'How much energy does ChatGPT "
        "use?', Feb 2025)",
    ),
    Factor(
        "cached_token_ratio",
        CACHED_TOKEN_RATIO,
        "uncached-prompt-token equivalents",
        "powermeter assumption mirroring the 90% cache-read discounts of OpenAI GPT-5, Anthropic, "
        "Google Vertex and DeepSeek (a cache hit skips prefill compute for the prefix)",
    ),
    Factor(
        "tree_absorption",
        TREE_G_CO2_PER_DAY,
        "gCO2/tree/day",
        TREE_SOURCE + " (US EPA's urban-seedling figure is 0.060 t per 10 years ≈ 16 g/day; Green Algorithms "
        "uses 11 kg/yr ≈ 30 g/day)",
    ),
)


@dataclass(frozen=True, slots=True)
class ModelArchitecture:
    """Parameter counts (billions) of a model; a closed model has ``min < max``.

    ``tps`` (decode tokens/s) and ``ttft_s`` are the model's deployment figures, if known.
    """

    kind: str  # "dense" | "moe"
    total_min_b: float
    total_max_b: float
    active_min_b: float
    active_max_b: float
    tps: float | None = None
    ttft_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("dense", "moe"):
            raise ValueError(f"unknown architecture kind {self.kind!r}")
        if not 0 < self.total_min_b <= self.total_max_b:
            raise ValueError("total parameters must satisfy 0 < min <= max")
        if not 0 < self.active_min_b <= self.active_max_b:
            raise ValueError("active parameters must satisfy 0 < min <= max")
        if self.active_max_b > self.total_max_b or self.active_min_b > self.total_min_b * 1.000001:
            raise ValueError("active parameters cannot exceed total parameters")
        if self.tps is not None and self.tps <= 0:
            raise ValueError("tps must be positive")
        if self.ttft_s is not None and self.ttft_s < 0:
            raise ValueError("ttft must be non-negative")

    @property
    def is_range(self) -> bool:
        return self.total_min_b != self.total_max_b or self.active_min_b != self.active_max_b


@dataclass(frozen=True, slots=True)
class SiteFactors:
    """Data-centre and grid factors of the site that served the request."""

    pue_min: float
    pue_max: float
    wue_site_min_l_per_kwh: float  # on-site water usage effectiveness (L per kWh of IT energy)
    wue_site_max_l_per_kwh: float
    intensity_g_per_kwh: float  # grid carbon intensity (location-based)
    wue_offsite_l_per_kwh: float  # water consumed to generate the electricity (EWIF)

    def __post_init__(self) -> None:
        if not 1.0 <= self.pue_min <= self.pue_max:
            raise ValueError("PUE must satisfy 1 <= min <= max")
        if not 0.0 <= self.wue_site_min_l_per_kwh <= self.wue_site_max_l_per_kwh:
            raise ValueError("WUE must satisfy 0 <= min <= max")
        if self.intensity_g_per_kwh < 0 or self.wue_offsite_l_per_kwh < 0:
            raise ValueError("grid factors must be non-negative")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Per-model quantities that do not depend on the request, computed once per catalog entry."""

    architecture: ModelArchitecture
    gpus_min: int
    gpus_max: int
    e_token_min_kwh: float  # N · f_E(P_active,min): IT kWh per output token on all GPUs
    e_token_max_kwh: float
    latency_per_token_min_s: float
    latency_per_token_max_s: float
    ttft_s: float
    embodied_rate_min_kg_per_s: float  # embodied kgCO2e allotted per second of request latency
    embodied_rate_max_kg_per_s: float
    server_kw_min: float  # server (non-GPU) power share of one request, kW
    server_kw_max: float


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    energy_wh: Estimate
    co2_g: Estimate  # usage + embodied
    co2_usage_g: Estimate
    co2_embodied_g: Estimate
    water_ml: Estimate
    decode_wh: Estimate  # facility energy (× PUE) of each part; the three parts sum to energy_wh
    prefill_wh: Estimate
    server_wh: Estimate
    latency_s: Estimate
    gpus: tuple[int, int]
    output_tokens: int  # decoded tokens counted (reasoning included once)
    uncached_prompt_tokens: int
    cached_prompt_tokens: int
    latency_capped: bool  # the observed TTFT or full latency lowered the modelled latency

    @property
    def tree_days(self) -> float:
        return tree_days(self.co2_g.value)


def gpu_count(total_params_b: float, quantization_bits: int = MODEL_QUANTIZATION_BITS) -> int:
    """GPUs needed to hold the weights, rounded up to a power of two (EcoLogits)."""
    memory_gb = MEMORY_OVERHEAD * total_params_b * quantization_bits / 8
    n = math.ceil(memory_gb / GPU_MEMORY_GB)
    return int(2 ** math.ceil(math.log2(n)))


def gpu_energy_per_token_wh(active_params_b: float, batch_size: int = BATCH_SIZE) -> float:
    """``f_E``: Wh per output token on one GPU (EcoLogits fit on the ML.ENERGY leaderboard)."""
    return GPU_ENERGY_ALPHA * math.exp(GPU_ENERGY_BETA * batch_size) * active_params_b + GPU_ENERGY_GAMMA


def prepare_model(arch: ModelArchitecture) -> ModelProfile:
    """Precompute what an estimate needs from a model (GPU count, per-token energy, latency)."""
    n_lo = gpu_count(arch.total_min_b)
    n_hi = gpu_count(arch.total_max_b)
    # EcoLogits converts f_E to kWh before multiplying; do the same so results match bit for bit.
    e_lo = n_lo * (gpu_energy_per_token_wh(arch.active_min_b) / WH_PER_KWH)
    e_hi = n_hi * (gpu_energy_per_token_wh(arch.active_max_b) / WH_PER_KWH)
    if arch.tps is None:
        lat_lo = LATENCY_ALPHA * arch.active_min_b + LATENCY_BETA * BATCH_SIZE + LATENCY_GAMMA
        lat_hi = LATENCY_ALPHA * arch.active_max_b + LATENCY_BETA * BATCH_SIZE + LATENCY_GAMMA
    else:
        lat_lo = lat_hi = 1 / arch.tps
    emb_lo = (n_lo / SERVER_GPUS) * SERVER_EMBODIED_KG_CO2E + n_lo * GPU_EMBODIED_KG_CO2E
    emb_hi = (n_hi / SERVER_GPUS) * SERVER_EMBODIED_KG_CO2E + n_hi * GPU_EMBODIED_KG_CO2E
    return ModelProfile(
        architecture=arch,
        gpus_min=n_lo,
        gpus_max=n_hi,
        e_token_min_kwh=e_lo,
        e_token_max_kwh=e_hi,
        latency_per_token_min_s=lat_lo,
        latency_per_token_max_s=lat_hi,
        ttft_s=arch.ttft_s or 0.0,
        embodied_rate_min_kg_per_s=emb_lo / (HARDWARE_LIFESPAN_S * BATCH_SIZE),
        embodied_rate_max_kg_per_s=emb_hi / (HARDWARE_LIFESPAN_S * BATCH_SIZE),
        server_kw_min=SERVER_POWER_KW * (n_lo / SERVER_GPUS) * (1 / BATCH_SIZE),
        server_kw_max=SERVER_POWER_KW * (n_hi / SERVER_GPUS) * (1 / BATCH_SIZE),
    )


def count_output_tokens(completion_tokens: int, reasoning_tokens: int, reasoning_in_completion: bool) -> int:
    """Decoded tokens, counting reasoning tokens exactly once.

    OpenAI-style usage already includes reasoning in ``completion_tokens`` (Anthropic likewise in
    ``output_tokens``); Google reports thoughts separately. A reported reasoning count larger than
    the completion count cannot be a subset of it, so it is then treated as separate.
    """
    if reasoning_in_completion and reasoning_tokens <= completion_tokens:
        return completion_tokens
    return completion_tokens + reasoning_tokens


def split_prompt_tokens(prompt_tokens: int, cached_tokens: int) -> tuple[int, int]:
    """(uncached, cached): cached tokens are read from the prompt cache and are part of the prompt."""
    cached = max(cached_tokens, 0)
    return max(prompt_tokens - cached, 0), cached


def _mid(lo: float, hi: float) -> Estimate:
    return Estimate((lo + hi) / 2, lo, hi)


def estimate_inference(
    profile: ModelProfile,
    site: SiteFactors,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    reasoning_in_completion: bool = True,
    observed_ttft_s: float | None = None,
    request_latency_s: float | None = None,
    prefill_ratio: float = PREFILL_TOKEN_RATIO,
    cached_ratio: float = CACHED_TOKEN_RATIO,
) -> InferenceEstimate:
    """Energy (Wh), CO2e (g) and water (mL) of one request, with [min, max] ranges."""
    if min(prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens) < 0:
        raise ValueError("token counts must be non-negative")
    n_out = count_output_tokens(completion_tokens, reasoning_tokens, reasoning_in_completion)
    n_unc, n_cached = split_prompt_tokens(prompt_tokens, cached_tokens)
    prefill_equiv = prefill_ratio * (n_unc + cached_ratio * n_cached)  # in output-token equivalents

    ttft = profile.ttft_s
    capped = False
    if observed_ttft_s is not None and 0 <= observed_ttft_s < ttft:
        ttft = observed_ttft_s
        capped = True
    cap = math.inf if request_latency_s is None else request_latency_s

    p = profile
    # lower-bound run
    lat_lo = n_out * p.latency_per_token_min_s + ttft
    if cap < lat_lo:
        lat_lo = cap
        capped = True
    dec_lo = n_out * p.e_token_min_kwh
    pre_lo = prefill_equiv * p.e_token_min_kwh
    srv_lo = (lat_lo / SECONDS_PER_HOUR) * p.server_kw_min
    # upper-bound run
    if p.architecture.is_range:
        lat_hi = n_out * p.latency_per_token_max_s + ttft
        if cap < lat_hi:
            lat_hi = cap
            capped = True
        dec_hi = n_out * p.e_token_max_kwh
        pre_hi = prefill_equiv * p.e_token_max_kwh
        srv_hi = (lat_hi / SECONDS_PER_HOUR) * p.server_kw_max
    else:
        lat_hi, dec_hi, pre_hi, srv_hi = lat_lo, dec_lo, pre_lo, srv_lo

    # kWh at IT level (EcoLogits: server energy + N · gpu energy)
    it_lo = srv_lo + (dec_lo + pre_lo)
    it_hi = srv_hi + (dec_hi + pre_hi)
    pue_lo, pue_hi = site.pue_min, site.pue_max
    e_lo = pue_lo * it_lo
    e_hi = pue_hi * it_hi
    ci_kg = site.intensity_g_per_kwh / G_PER_KG
    use_lo = e_lo * ci_kg
    use_hi = e_hi * ci_kg
    emb_lo = lat_lo * p.embodied_rate_min_kg_per_s
    emb_hi = lat_hi * p.embodied_rate_max_kg_per_s
    w_off = site.wue_offsite_l_per_kwh
    wat_lo = it_lo * (site.wue_site_min_l_per_kwh + pue_lo * w_off)
    wat_hi = it_hi * (site.wue_site_max_l_per_kwh + pue_hi * w_off)

    k = WH_PER_KWH
    g = G_PER_KG
    return InferenceEstimate(
        energy_wh=_mid(e_lo * k, e_hi * k),
        co2_g=_mid((use_lo + emb_lo) * g, (use_hi + emb_hi) * g),
        co2_usage_g=_mid(use_lo * g, use_hi * g),
        co2_embodied_g=_mid(emb_lo * g, emb_hi * g),
        water_ml=_mid(wat_lo * ML_PER_L, wat_hi * ML_PER_L),
        decode_wh=_mid(pue_lo * dec_lo * k, pue_hi * dec_hi * k),
        prefill_wh=_mid(pue_lo * pre_lo * k, pue_hi * pre_hi * k),
        server_wh=_mid(pue_lo * srv_lo * k, pue_hi * srv_hi * k),
        latency_s=_mid(lat_lo, lat_hi),
        gpus=(p.gpus_min, p.gpus_max),
        output_tokens=n_out,
        uncached_prompt_tokens=n_unc,
        cached_prompt_tokens=n_cached,
        latency_capped=capped,
    )


def observed_ttft_s(start_time_ms: float | None, first_token_time_ms: float | None) -> float | None:
    """Client-observed time to first token in seconds, or ``None`` when not measurable."""
    if start_time_ms is None or first_token_time_ms is None:
        return None
    delta = first_token_time_ms - start_time_ms
    if delta < 0:
        return None
    return delta / MS_PER_SECOND


def plausibility(reference: Estimate) -> dict[str, object]:
    """Compare a model's estimate for the reference query (500 output tokens, no prompt) with the
    published per-query figures; ``within_bound`` is False above :data:`PLAUSIBLE_MAX_RATIO`."""
    ratio = reference.value / REFERENCE_QUERY_WH
    return {
        "reference_query_output_tokens": REFERENCE_QUERY_OUTPUT_TOKENS,
        "reference_query_wh": {
            "value": reference.value,
            "min": reference.min if reference.min is not None else reference.value,
            "max": reference.max if reference.max is not None else reference.value,
        },
        "published_query_wh": {name: wh for name, wh, _ in PUBLISHED_QUERY_WH},
        "ratio_to_published": ratio,
        "bound_ratio": PLAUSIBLE_MAX_RATIO,
        "within_bound": ratio <= PLAUSIBLE_MAX_RATIO,
        "sources": [src for _, _, src in PUBLISHED_QUERY_WH],
    }


def tree_days(co2_g: float) -> float:
    """Days one mature tree needs to absorb ``co2_g`` grams of CO2."""
    return co2_g / TREE_G_CO2_PER_DAY


def tree_message(tree_days_value: float) -> str:
    """The seed's sentence, with four decimals."""
    return f"This request cost the equivalent of {tree_days_value:.4f} days of a tree's carbon absorption."


CALC_EXACT_REGION = "EXACT_REGION"
CALC_PROVIDER_DEFAULT = "PROVIDER_DEFAULT"
CALC_GLOBAL_AVERAGE = "GLOBAL_AVERAGE"


def calculation_method(region_resolved: bool, provider_default_known: bool) -> str:
    """``EXACT_REGION`` when the detected region is a known location, else the provider's usual
    region (``PROVIDER_DEFAULT``), else the world average (``GLOBAL_AVERAGE``)."""
    if region_resolved:
        return CALC_EXACT_REGION
    if provider_default_known:
        return CALC_PROVIDER_DEFAULT
    return CALC_GLOBAL_AVERAGE
