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
  and region names only, and the datasets do not change while the process runs) and the same
  :func:`~powermeter.methodology.ai_inference.estimate_inference` with the call's tokens and timings.
  A unit test compares the two over many inputs.
"""

from __future__ import annotations

import re
from typing import Any

from powermeter.inference.service import Engine, resolve_model
from powermeter.infra.errors import ApiError
from powermeter.infra.validation import MAX_EPOCH_MS, NO_CONTROL_PATTERN
from powermeter.methodology.ai_inference import ModelProfile, SiteFactors, estimate_inference, observed_ttft_s

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
        profile, site, reasoning_in_completion = hit
        start, end = rec["startTimeMs"], rec["endTimeMs"]
        est = estimate_inference(
            profile,
            site,
            prompt_tokens=rec["prompt_tokens"],
            completion_tokens=rec["completion_tokens"],
            reasoning_tokens=rec["reasoning_tokens"],
            cached_tokens=rec["cached_tokens"],
            reasoning_in_completion=reasoning_in_completion,
            observed_ttft_s=observed_ttft_s(start, rec.get("firstTokenTimeMs")),
            request_latency_s=(end - start) / 1000.0 if end >= start else None,
        )
        return round(est.energy_wh.value, _DIGITS), round(est.co2_g.value, _DIGITS)
