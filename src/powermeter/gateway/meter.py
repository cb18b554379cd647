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
from powermeter.methodology.ai_inference import CACHED_TOKEN_RATIO, PREFILL_TOKEN_RATIO
from powermeter.methodology.units import G_PER_KG, MS_PER_SECOND, SECONDS_PER_HOUR, WH_PER_KWH

_NO_CONTROL = re.compile(NO_CONTROL_PATTERN)
_DIGITS = 6  # as inference.service rounds the figures it returns
_GOOD_MODELS: set[str] = set()  # model names already checked (a few per gateway: one regex match each)


def valid_name(value: str, max_length: int) -> bool:
    """A provider, model, region or tag the server accepts: 1 to ``max_length`` characters, no control
    characters."""
    return 0 < len(value) <= max_length and _NO_CONTROL.match(value) is not None


def check_record(rec: dict[str, Any]) -> str | None:
    """Why the server would refuse this gateway record, or ``None`` when it accepts it (see the module
    docstring for what the construction already guarantees)."""
    return check_fields(rec.get("model"), rec["startTimeMs"], rec["endTimeMs"], rec.get("firstTokenTimeMs"))


def check_fields(model: str | None, start: int, end: int, first: int | None) -> str | None:
    """:func:`check_record` on the fields it reads (the gateway's hot path builds no dictionary)."""
    if model is not None and model not in _GOOD_MODELS:
        if len(model) > 200 or _NO_CONTROL.match(model) is None:
            return "model: at most 200 characters, no control characters"
        if len(_GOOD_MODELS) >= 1024:
            _GOOD_MODELS.clear()
        _GOOD_MODELS.add(model)
    if not 0 <= start <= end <= MAX_EPOCH_MS:
        return f"endTimeMs must not be before startTimeMs ({start}), got {end}"
    if first is not None and not 0 <= first <= MAX_EPOCH_MS:
        return f"firstTokenTimeMs out of range: {first}"
    return None


_HEADER = (f"x-energy-wh: %.{_DIGITS}f\r\nx-co2-grams: %.{_DIGITS}f\r\n").encode()


def footprint_header(fp: tuple[float, float]) -> bytes:
    """The ``X-Energy-Wh`` and ``X-CO2-Grams`` header lines of an unrounded footprint
    (:meth:`Footprints.raw`): ``%.6f`` prints the digits ``round(x, 6)`` keeps (both round the exact
    binary value correctly), so a header parses to the float the server returns; it costs a fifth of
    ``round`` and ``repr``."""
    return _HEADER % fp


def footprint_value(x: float) -> bytes:
    """One footprint header value (the ASGI path), as :func:`footprint_header` writes it."""
    return b"%.*f" % (_DIGITS, x)


_Consts = tuple[float, float, float, float, float, float, float, float, float, float, float, float, bool, bool]


class Footprints:
    """``(energy_wh, co2_g)`` of a record, equal to ``inference.service.footprint`` (module docstring)."""

    def __init__(self, engine: Engine, *, max_entries: int = 4096) -> None:
        self.engine = engine
        self.max_entries = max_entries
        self._sites: dict[tuple[str, str | None, str | None], _Consts | None] = {}

    def _resolve(self, provider: str, model: str | None, region: str | None) -> _Consts | None:
        """The inputs of the energy and CO2 lines for one (provider, model, region), read once from the
        model profile and the site factors (attribute reads and ``intensity / G_PER_KG`` move here;
        the arithmetic per call is unchanged, operation for operation)."""
        key = (provider, model, region)
        try:
            return self._sites[key]
        except KeyError:
            pass
        engine = self.engine
        hit: _Consts | None
        try:
            res = resolve_model(engine, model, provider)
        except ApiError:  # an unknown model: no footprint (the server rejects the record likewise)
            hit = None
        else:
            site = engine.sites.resolve(provider, region)
            found = engine.sites.providers.find(provider)
            p, f = res.entry.profile, site.factors
            hit = (
                p.ttft_s,
                p.latency_per_token_min_s,
                p.latency_per_token_max_s,
                p.e_token_min_kwh,
                p.e_token_max_kwh,
                p.server_kw_min,
                p.server_kw_max,
                p.embodied_rate_min_kg_per_s,
                p.embodied_rate_max_kg_per_s,
                f.pue_min,
                f.pue_max,
                f.intensity_g_per_kwh / G_PER_KG,
                p.architecture.is_range,
                found.reasoning_in_completion if found is not None else True,
            )
        if len(self._sites) >= self.max_entries:
            self._sites.clear()
        self._sites[key] = hit
        return hit

    def __call__(self, rec: dict[str, Any]) -> tuple[float, float] | None:
        """The footprint of a record checked by :func:`check_record`, or ``None`` when its model is unknown."""
        return self.of(
            rec["provider"],
            rec.get("model"),
            rec.get("detected_region"),
            rec["prompt_tokens"],
            rec["completion_tokens"],
            rec["reasoning_tokens"],
            rec["cached_tokens"],
            rec["startTimeMs"],
            rec.get("firstTokenTimeMs"),
            rec["endTimeMs"],
        )

    def of(
        self,
        provider: str,
        model: str | None,
        region: str | None,
        prompt: int,
        completion: int,
        reasoning: int,
        cached: int,
        start: int,
        first: int | None,
        end: int,
    ) -> tuple[float, float] | None:
        """:meth:`__call__` on the record's fields, rounded as the server rounds them."""
        fp = self.raw(provider, model, region, prompt, completion, reasoning, cached, start, first, end)
        return None if fp is None else (round(fp[0], _DIGITS), round(fp[1], _DIGITS))

    def raw(
        self,
        provider: str,
        model: str | None,
        region: str | None,
        prompt: int,
        completion: int,
        reasoning: int,
        cached: int,
        start: int,
        first: int | None,
        end: int,
    ) -> tuple[float, float] | None:
        """The footprint before rounding (the gateway's hot path: no record lookups, no ``round``; see
        :func:`footprint_header`)."""
        hit = self._sites.get((provider, model, region)) or self._resolve(provider, model, region)
        if hit is None:
            return None
        (
            ttft,
            lat_tok_min,
            lat_tok_max,
            e_min,
            e_max,
            kw_min,
            kw_max,
            emb_min,
            emb_max,
            pue_min,
            pue_max,
            ci_kg,
            is_range,
            reasoning_in_completion,
        ) = hit
        if prompt < 0 or completion < 0 or reasoning < 0 or cached < 0:
            return None  # (never: the gateway's counts are not negative; estimate_inference refuses them)
        # estimate_inference, its energy and CO2 lines only (module docstring), step for step
        n_out = completion if reasoning_in_completion and reasoning <= completion else completion + reasoning
        n_unc, n_cached = max(prompt - cached, 0), cached
        prefill_equiv = PREFILL_TOKEN_RATIO * (n_unc + CACHED_TOKEN_RATIO * n_cached)
        if first is not None:  # observed_ttft_s
            delta = first - start
            if delta >= 0:
                observed = delta / MS_PER_SECOND
                if 0 <= observed < ttft:
                    ttft = observed
        cap = (end - start) / 1000.0 if end >= start else math.inf
        lat_lo = n_out * lat_tok_min + ttft
        if cap < lat_lo:
            lat_lo = cap
        dec_lo = n_out * e_min
        pre_lo = prefill_equiv * e_min
        srv_lo = (lat_lo / SECONDS_PER_HOUR) * kw_min
        if is_range:
            lat_hi = n_out * lat_tok_max + ttft
            if cap < lat_hi:
                lat_hi = cap
            dec_hi = n_out * e_max
            pre_hi = prefill_equiv * e_max
            srv_hi = (lat_hi / SECONDS_PER_HOUR) * kw_max
        else:
            lat_hi, dec_hi, pre_hi, srv_hi = lat_lo, dec_lo, pre_lo, srv_lo
        e_lo = pue_min * (srv_lo + (dec_lo + pre_lo))
        e_hi = pue_max * (srv_hi + (dec_hi + pre_hi))
        k, g = WH_PER_KWH, G_PER_KG
        energy_wh = (e_lo * k + e_hi * k) / 2
        co2_g = ((e_lo * ci_kg + lat_lo * emb_min) * g + (e_hi * ci_kg + lat_hi * emb_max) * g) / 2
        return energy_wh, co2_g
