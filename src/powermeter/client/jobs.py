"""Compute-job energy reporting (seed 000): ``/v1/report``, ``/v1/batch``, ``/v1/receipts``,
``/v1/api-keys/stats``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

from powermeter.client._base import Http
from powermeter.client.types import ApiKeyStats, BatchData, Job, Receipt, ReceiptsData, ReportData

MAX_BATCH = 10_000


class JobsAPI:
    def __init__(self, http: Http) -> None:
        self._http = http

    def report(
        self,
        job_id: str,
        duration_minutes: float,
        *,
        cpu_cores: int | None = None,
        memory_gb: float | None = None,
        gpu_cores: int | None = None,
        geo_iso: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> ReportData:
        """``POST /v1/report``: one job → kWh, g CO2e and a receipt id."""
        body: dict[str, Any] = {"job_id": job_id, "duration_minutes": duration_minutes, **extra}
        for k, v in (
            ("cpu_cores", cpu_cores),
            ("memory_gb", memory_gb),
            ("gpu_cores", gpu_cores),
            ("geo_iso", geo_iso),
        ):
            if v is not None:
                body[k] = v
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = self._http.json("POST", "/v1/report", json=body, headers=headers)
        return cast(ReportData, data["data"])

    def batch(self, jobs: Sequence[Job | dict[str, Any]], *, idempotency_key: str | None = None) -> BatchData:
        """``POST /v1/batch``: up to 10,000 jobs, all or nothing."""
        if len(jobs) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} jobs, got {len(jobs)}")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = self._http.json("POST", "/v1/batch", json={"jobs": list(jobs)}, headers=headers)
        return cast(BatchData, data["data"])

    def receipts(self, *, limit: int = 50, offset: int = 0, job_id: str | None = None) -> ReceiptsData:
        """``GET /v1/receipts`` (limit ≤ 1000)."""
        data = self._http.json("GET", "/v1/receipts", params={"limit": limit, "offset": offset, "job_id": job_id})
        return cast(ReceiptsData, data["data"])

    def iter_receipts(self, *, job_id: str | None = None, page_size: int = 1000) -> Iterator[Receipt]:
        """Every receipt, page by page."""
        offset = 0
        while True:
            page = self.receipts(limit=page_size, offset=offset, job_id=job_id)
            items = page.get("receipts", [])
            yield from items
            if not page.get("has_more") or not items:
                return
            offset += len(items)

    def receipt(self, receipt_id: str) -> dict[str, Any]:
        """``GET /v1/receipts/{id}``: the signed receipt with its provenance."""
        data = self._http.json("GET", f"/v1/receipts/{receipt_id}")
        return cast(dict[str, Any], data.get("data", data))

    def api_key_stats(self) -> ApiKeyStats:
        """``GET /v1/api-keys/stats``: today's calls, limit and kWh."""
        data = self._http.json("GET", "/v1/api-keys/stats")
        return cast(ApiKeyStats, data["data"])
