"""``powermeter.client``: a typed Python SDK for every powermeter API family, and ``CarbonRouter``.

    from powermeter.client import PowermeterClient, CarbonRouter

    with PowermeterClient("http://127.0.0.1:8000", api_key="pm_live_…") as pm:
        r = pm.jobs.report("ml-training-001", 120, cpu_cores=8, memory_gb=32, gpu_cores=2, geo_iso="US")
        pm.routing.route("us-west1", 128)                  # seed 002
        pm.inference.record("OpenAI", 788, 312, model="gpt-4o")
        pm.cost.cost({"watts": 100, "hours_per_day": 8}, rate_config={"flat_rate": 0.15})
        pm.devices.list()

Families: ``jobs`` (report, batch, receipts, api-key stats), ``audit``, ``inference``, ``routing``
(route, grid data, Carbon Aware SDK endpoints), ``cost`` (public calculator) and ``devices``. Errors
raise :class:`PowermeterError` subclasses carrying ``status``, ``code``, ``detail`` and
``retry_after``.

``track`` measures a block or a function (``with track("job-1", client=pm): ...``, ``@track(...)``)
and reports it as one job; see :mod:`powermeter.tracking.api`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType

import httpx

from powermeter import __version__
from powermeter.client._base import Http
from powermeter.client.audit import AuditAPI
from powermeter.client.cost import CostAPI, DevicesAPI
from powermeter.client.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PowermeterError,
    RateLimitError,
    ServerError,
    TransportError,
    UnprocessableError,
)
from powermeter.client.inference import InferenceAPI
from powermeter.client.jobs import JobsAPI
from powermeter.client.router import AsyncCarbonTransport, CarbonRouter, CarbonTransport, Choice
from powermeter.client.routing import RoutingAPI
from powermeter.tracking.api import track

DEFAULT_BASE_URL = "http://127.0.0.1:8000"

__all__ = [
    "AsyncCarbonTransport",
    "AuthenticationError",
    "BadRequestError",
    "CarbonRouter",
    "CarbonTransport",
    "Choice",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "PowermeterClient",
    "PowermeterError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "UnprocessableError",
    "track",
]


class PowermeterClient:
    """Synchronous client. ``api_key`` defaults to ``$POWERMETER_API_KEY``, ``base_url`` to
    ``$POWERMETER_URL`` (else ``http://127.0.0.1:8000``). Pass ``transport=`` to route through a
    :class:`CarbonRouter` or to test against an ASGI app."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url or os.environ.get("POWERMETER_URL") or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get("POWERMETER_API_KEY")
        self._owns = http_client is None
        self._client = http_client or httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"powermeter-python/{__version__}", **dict(headers or {})},
        )
        http = Http(self._client, key)
        self.jobs = JobsAPI(http)
        self.audit = AuditAPI(http)
        self.inference = InferenceAPI(http)
        self.routing = RoutingAPI(http)
        self.cost = CostAPI(http)
        self.devices = DevicesAPI(http)

    def close(self) -> None:
        if self._owns:
            self._client.close()

    def __enter__(self) -> PowermeterClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
