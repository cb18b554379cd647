"""The per-call metering of ``powermeter gateway``: one call's record and its footprint, cheaply.

Both are on the hot path (the footprint goes into the answer's ``X-Energy-Wh`` header), so neither
builds a pydantic model per call:

- :func:`check_record` checks a record against the rules ``POST /v1/inference/batch`` applies
  (:class:`~powermeter.inference.schemas.InferenceBatchItem`). The gateway builds every field itself,
  bounded by construction (token counts clamped, its own clock, a tag checked on arrival, names checked
  at start-up), so only what can still fail is checked here: the model the upstream named (length,
  control characters) and a clock that stepped back between the start and the end of a call. A unit
  test holds that it accepts exactly what the schema accepts.
- :class:`Footprints` gives ``(energy_wh, co2_g)`` exactly as :func:`powermeter.inference.service.footprint`
  does: the same resolution of the model and the site (memoised: they depend on the provider, model
  and region names only, and the datasets do not change while the process runs) and the energy and CO2
  lines of :func:`~powermeter.methodology.ai_inference.estimate_inference`, the same floating-point
  operations in the same order, without the seven other figures and the ten objects that function
  builds (about two thirds of the gateway's metering cost per call). A unit test compares the two over
  many inputs, bit for bit, so a change of the methodology that is not carried over here fails it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from powermeter.inference.service import Engine, resolve_model
from powermeter.infra.errors import ApiError
from powermeter.infra.validation import MAX_EPOCH_MS, NO_CONTROL_PATTERN
from powermeter.methodology.ai_inference import (
    CACHED_TOKEN_RATIO,
    PREFILL_TOKEN_RATIO,
    ModelProfile,
    SiteFactors,
    observed_ttft_s,
)
from powermeter.methodology.units import G_PER_KG, SECONDS_PER_HOUR, WH_PER_KWH

_NO_CONTROL = re.compile(NO_CONTROL_PATTERN)
_DIGITS = 6  # as inference.service rounds the figures it returns


def valid_name(value: str, max_length: int) -> bool:
    """A provider, model, region or tag the server accepts: 1 to ``max_length`` characters, no control
    characters."""
    return 0 < len(value) <= max_length and _NO_CONTROL.match(value) is not None


def check_record(rec: dict[str, Any]) -> str | None:
    """Why the server would refuse this gateway record, or ``None`` when it accepts it (see the module
    docstring for what the construction already guarantees)."""
    model = rec.get("model")
    if model is not None and (len(model) > 200 or _NO_CONTROL.match(model) is None):
        return "model: at most 200 characters, no control characters"
    start, end, first = rec["startTimeMs"], rec["endTimeMs"], rec.get("firstTokenTimeMs")
    if not 0 <= start <= end <= MAX_EPOCH_MS:
        return f"endTimeMs must not be before startTimeMs ({start}), got {end}"
    if first is not None and not 0 <= first <= MAX_EPOCH_MS:
        return f"firstTokenTimeMs out of range: {first}"
    return None


class Footprints:
    """``(energy_wh, co2_g)`` of a record, equal to ``inference.service.footprint`` (module docstring)."""

    def __init__(self, engine: Engine, *, max_entries: int = 4096) -> None:
        self.engine = engine
        self.max_entries = max_entries
        self._sites: dict[tuple[str, str | None, str | None], tuple[ModelProfile, SiteFactors, bool] | None] = {}

    def _resolve(
        self, provider: str, model: str | None, region: str | None
    ) -> tuple[ModelProfile, SiteFactors, bool] | None:
        key = (provider, model, region)
        try:
            return self._sites[key]
        except KeyError:
            pass
        engine = self.engine
        hit: tuple[ModelProfile, SiteFactors, bool] | None
        try:
            res = resolve_model(engine, model, provider)
        except ApiError:  # an unknown model: no footprint (the server rejects the record likewise)
            hit = None
        else:
            site = engine.sites.resolve(provider, region)
            p = engine.sites.providers.find(provider)
            hit = (res.entry.profile, site.factors, p.reasoning_in_completion if p is not None else True)
        if len(self._sites) >= self.max_entries:
            self._sites.clear()
        self._sites[key] = hit
        return hit

    def __call__(self, rec: dict[str, Any]) -> tuple[float, float] | None:
        """The footprint of a record checked by :func:`check_record`, or ``None`` when its model is unknown."""
        hit = self._resolve(rec["provider"], rec.get("model"), rec.get("detected_region"))
        if hit is None:
            return None
        p, site, reasoning_in_completion = hit
        completion, reasoning = rec["completion_tokens"], rec["reasoning_tokens"]
        prompt, cached = rec["prompt_tokens"], rec["cached_tokens"]
        if min(prompt, completion, reasoning, cached) < 0:
            return None  # (never: the gateway's counts are not negative; estimate_inference refuses them)
        start, end = rec["startTimeMs"], rec["endTimeMs"]
        # estimate_inference, its energy and CO2 lines only (module docstring), step for step
        n_out = completion if reasoning_in_completion and reasoning <= completion else completion + reasoning
        n_unc, n_cached = max(prompt - cached, 0), cached
        prefill_equiv = PREFILL_TOKEN_RATIO * (n_unc + CACHED_TOKEN_RATIO * n_cached)
        ttft = p.ttft_s
        observed = observed_ttft_s(start, rec.get("firstTokenTimeMs"))
        if observed is not None and 0 <= observed < ttft:
            ttft = observed
        cap = (end - start) / 1000.0 if end >= start else math.inf
        lat_lo = n_out * p.latency_per_token_min_s + ttft
        if cap < lat_lo:
            lat_lo = cap
        dec_lo = n_out * p.e_token_min_kwh
        pre_lo = prefill_equiv * p.e_token_min_kwh
        srv_lo = (lat_lo / SECONDS_PER_HOUR) * p.server_kw_min
        if p.architecture.is_range:
            lat_hi = n_out * p.latency_per_token_max_s + ttft
            if cap < lat_hi:
                lat_hi = cap
            dec_hi = n_out * p.e_token_max_kwh
            pre_hi = prefill_equiv * p.e_token_max_kwh
            srv_hi = (lat_hi / SECONDS_PER_HOUR) * p.server_kw_max
        else:
            lat_hi, dec_hi, pre_hi, srv_hi = lat_lo, dec_lo, pre_lo, srv_lo
        e_lo = site.pue_min * (srv_lo + (dec_lo + pre_lo))
        e_hi = site.pue_max * (srv_hi + (dec_hi + pre_hi))
        ci_kg = site.intensity_g_per_kwh / G_PER_KG
        k, g = WH_PER_KWH, G_PER_KG
        energy_wh = (e_lo * k + e_hi * k) / 2
        co2_g = (
            (e_lo * ci_kg + lat_lo * p.embodied_rate_min_kg_per_s) * g
            + (e_hi * ci_kg + lat_hi * p.embodied_rate_max_kg_per_s) * g
        ) / 2
        return round(energy_wh, _DIGITS), round(co2_g, _DIGITS)
