"""AI inference footprint (seed 004): ``POST /v1/inference``, ``GET /v1/inference/history``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any, cast

from powermeter.client._base import Http
from powermeter.client.types import InferenceHistory, InferenceLog, InferenceResult


class InferenceAPI:
    def __init__(self, http: Http) -> None:
        self._http = http

    def record(
        self,
        provider: str,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        model: str | None = None,
        detected_region: str | None = None,
        reasoning_tokens: int | None = None,
        cached_tokens: int | None = None,
        **extra: Any,
    ) -> InferenceResult:
        """Record one LLM request → ``energy_wh``, ``co2_grams``, ``water_ml``, ``tree_days``, ``audit``.

        ``extra`` passes the seed's other fields as they are (``startTimeMs``, ``firstTokenTimeMs``,
        ``source``, ``is_estimated``, ``estimation_method``).
        """
        body: dict[str, Any] = {
            "provider": provider,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            **extra,
        }
        for k, v in (
            ("model", model),
            ("detected_region", detected_region),
            ("reasoning_tokens", reasoning_tokens),
            ("cached_tokens", cached_tokens),
        ):
            if v is not None:
                body[k] = v
        return cast(InferenceResult, self._http.json("POST", "/v1/inference", json=body))

    def history(
        self,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        key_name: str | None = None,
        page: int = 1,
        limit: int = 100,
    ) -> InferenceHistory:
        """``GET /v1/inference/history`` (paginated, newest first)."""
        params = {
            "startDate": start_date.isoformat() if isinstance(start_date, date) else start_date,
            "endDate": end_date.isoformat() if isinstance(end_date, date) else end_date,
            "keyName": key_name,
            "page": page,
            "limit": limit,
        }
        return cast(InferenceHistory, self._http.json("GET", "/v1/inference/history", params=params))

    def iter_history(self, **filters: Any) -> Iterator[InferenceLog]:
        page = 1
        while True:
            out = self.history(page=page, **filters)
            yield from out.get("data", [])
            pag = out.get("pagination", {})
            if page >= int(pag.get("totalPages", 0) or 0):
                return
            page += 1
