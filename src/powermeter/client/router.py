"""``CarbonRouter``: the cleanest base URL from a mapping of region → base URL, and an ``httpx``
transport that sends each request there (with failover for idempotent requests).

Where the decision comes from:

- with ``client=`` (a :class:`~powermeter.client.PowermeterClient`): the server's ``POST /route``
  over the mapping's regions (its provider, latency bounds and per-account hysteresis), at most
  once per ``refresh_s``; if the server cannot be reached, the offline decision below, saying so
  in :attr:`CarbonRouter.last_error`;
- without: offline, in-process, from the bundled datasets (annual intensities, modelled latency)
  or a ``provider=`` you pass (e.g. a ``CsvProvider``), with the same decision rule as the server
  (``powermeter.methodology.routing.decide``, hysteresis margin included).

Example::

    router = CarbonRouter({"CAISO": "https://us-west.example.com", "PJM": "https://us-east.example.com"})
    with httpx.Client(transport=router.transport(), base_url="http://api") as http:
        http.get("/v1/things")          # goes to the cleanest of the two; X-Carbon-Region says which
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from powermeter.methodology.routing import DEFAULT_MARGIN, Candidate, Policy, decide

if TYPE_CHECKING:
    from powermeter.client import PowermeterClient
    from powermeter.routing.providers import IntensityProvider

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Choice:
    region: str
    """The region as named in the mapping."""
    base_url: str
    intensity_g_per_kwh: float | None
    provider: str
    signal: str


def _now() -> datetime:
    return datetime.now(UTC)


class CarbonRouter:
    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        source_region: str | None = None,
        max_latency_ms: float | None = None,
        carbon_weight: float = 1.0,
        margin: float = DEFAULT_MARGIN,
        client: PowermeterClient | None = None,
        provider: IntensityProvider | None = None,
        refresh_s: float = 60.0,
        down_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _now,
    ) -> None:
        if not upstreams:
            raise ValueError("CarbonRouter needs at least one region → base URL")
        for region, url in upstreams.items():
            u = httpx.URL(url)
            if u.scheme not in ("http", "https") or not u.host:
                raise ValueError(f"base URL of {region!r} must be http(s)://host[:port][/prefix], got {url!r}")
        self.upstreams = dict(upstreams)
        self.source_region = source_region
        self.policy = Policy(carbon_weight=carbon_weight, max_latency_ms=max_latency_ms, margin=margin)
        self.client = client
        self._provider = provider
        self.refresh_s = refresh_s
        self.down_s = down_s
        self._mono = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._ranked: list[Choice] = []
        self._refreshed_at = -float("inf")
        self._current: str | None = None
        self._down_until: dict[str, float] = {}
        self.last_error: str | None = None
        """Why the last decision did not come from the server (``None`` when it did)."""
        self.decisions = 0

    # ------------------------------------------------------------------ decisions

    def needs_refresh(self) -> bool:
        return self._mono() - self._refreshed_at >= self.refresh_s

    def refresh(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        ranked: list[Choice] | None = None
        if self.client is not None:
            try:
                ranked = self._from_server()
                self.last_error = None
            except Exception as exc:  # the server is optional: decide offline, say why
                self.last_error = f"{type(exc).__name__}: {exc}"
        if ranked is None:
            ranked = self._offline()
        self._ranked = ranked
        self._current = ranked[0].region if ranked else None
        self._refreshed_at = self._mono()
        self.decisions += 1

    def _canonical(self) -> dict[str, str]:
        """Mapping name → canonical region code (as the server and the datasets spell it)."""
        from powermeter.data.locations import load_locations

        locs = load_locations()
        out = {}
        for name in self.upstreams:
            loc = locs.resolve(name)
            out[name] = loc.code if loc is not None else name
        return out

    def _from_server(self) -> list[Choice]:
        assert self.client is not None  # noqa: S101 - guarded by the caller
        canon = self._canonical()
        back = {code: name for name, code in canon.items()}
        names = list(self.upstreams)
        res = self.client.routing.route(
            self.source_region or names[0],
            0,
            candidates=[canon[n] for n in names],
            max_latency_ms=self.policy.max_latency_ms,
            carbon_weight=self.policy.carbon_weight,
        )
        ranked = []
        for alt in res["alternatives"]:
            name = back.get(alt["region"], alt["region"])
            if name in self.upstreams:
                ranked.append(
                    Choice(name, self.upstreams[name], alt["co2_g_per_kwh"], res["provider"], res["signal_type"])
                )
        seen = {c.region for c in ranked}
        ranked += [
            Choice(n, self.upstreams[n], None, res["provider"], res["signal_type"]) for n in names if n not in seen
        ]
        return ranked

    def _offline(self) -> list[Choice]:
        from powermeter.data.grid import load_grid_data
        from powermeter.routing.providers import StaticProvider

        provider = self._provider or StaticProvider()
        grid = load_grid_data()
        canon = self._canonical()
        now = self._now()
        points = {}
        for name in self.upstreams:
            try:
                points[name] = provider.current_nowait(canon[name], now)
            except Exception as exc:  # an unknown region ranks last
                self.last_error = f"{name}: {exc}"
        src = self.source_region
        candidates = [
            Candidate(
                name,
                p.intensity_g_per_kwh,
                grid.latency.rtt_ms(src, canon[name]) if src else None,
                True,
            )
            for name, p in points.items()
        ]
        decision = decide(candidates, self.policy, self._current)
        ranked = [
            Choice(r.region, self.upstreams[r.region], r.intensity_g_per_kwh, points[r.region].provider,
                   points[r.region].signal)
            for r in decision.ranked
        ]  # fmt: skip
        seen = {c.region for c in ranked}
        for name in self.upstreams:
            if name not in seen:
                p = points.get(name)
                ranked.append(
                    Choice(name, self.upstreams[name], p.intensity_g_per_kwh if p else None,
                           p.provider if p else "none", p.signal if p else "unknown")
                )  # fmt: skip
        return ranked

    def ranked(self) -> list[Choice]:
        """Every upstream, best first; regions marked down recently go last."""
        if self.needs_refresh():
            with self._lock:
                if self.needs_refresh():
                    self._refresh_locked()
        ranked = self._ranked
        if self._down_until:
            t = self._mono()
            up = [c for c in ranked if self._down_until.get(c.region, 0.0) <= t]
            down = [c for c in ranked if self._down_until.get(c.region, 0.0) > t]
            ranked = up + down
        return ranked

    def best(self) -> Choice:
        return self.ranked()[0]

    def best_url(self) -> str:
        """The base URL of the cleanest eligible upstream."""
        return self.best().base_url

    def mark_down(self, region: str) -> None:
        """Send traffic elsewhere for ``down_s`` seconds (the transports call this on connect errors)."""
        self._down_until[region] = self._mono() + self.down_s

    # ------------------------------------------------------------------ transports

    def transport(self, inner: httpx.BaseTransport | None = None) -> CarbonTransport:
        """An ``httpx`` transport for ``httpx.Client(transport=...)``."""
        return CarbonTransport(self, inner or httpx.HTTPTransport())

    def async_transport(self, inner: httpx.AsyncBaseTransport | None = None) -> AsyncCarbonTransport:
        """An ``httpx`` transport for ``httpx.AsyncClient(transport=...)``."""
        return AsyncCarbonTransport(self, inner or httpx.AsyncHTTPTransport())


def _rebase(url: httpx.URL, base_url: str) -> httpx.URL:
    base = httpx.URL(base_url)
    prefix = base.raw_path.rstrip(b"/") if base.raw_path not in (b"", b"/") else b""
    return base.copy_with(raw_path=prefix + url.raw_path)


def _forward(request: httpx.Request, choice: Choice, replayable: bool) -> httpx.Request:
    url = _rebase(request.url, choice.base_url)
    headers = [(b"Host", url.netloc)] + [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
    if replayable:
        return httpx.Request(request.method, url, headers=headers, content=request.content,
                             extensions=request.extensions)  # fmt: skip
    return httpx.Request(request.method, url, headers=headers, stream=request.stream, extensions=request.extensions)


class CarbonTransport(httpx.BaseTransport):
    def __init__(self, router: CarbonRouter, inner: httpx.BaseTransport) -> None:
        self.router = router
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        order = self.router.ranked()
        idempotent = request.method in IDEMPOTENT_METHODS
        if idempotent:
            request.read()  # buffered so it can be replayed on another upstream
        attempts = order if idempotent else order[:1]
        last: Exception | None = None
        for i, choice in enumerate(attempts):
            try:
                resp = self.inner.handle_request(_forward(request, choice, idempotent))
            except httpx.TransportError as exc:
                self.router.mark_down(choice.region)
                last = exc
                continue
            if idempotent and resp.status_code in RETRY_STATUSES and i < len(attempts) - 1:
                resp.close()
                continue
            _tag(resp, choice)
            return resp
        assert last is not None  # noqa: S101 - at least one attempt ran
        raise last

    def close(self) -> None:
        self.inner.close()


class AsyncCarbonTransport(httpx.AsyncBaseTransport):
    def __init__(self, router: CarbonRouter, inner: httpx.AsyncBaseTransport) -> None:
        self.router = router
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.router.needs_refresh():
            # A server-backed decision is a blocking HTTP call: keep it off the event loop.
            await asyncio.to_thread(self.router.refresh)
        order = self.router.ranked()
        idempotent = request.method in IDEMPOTENT_METHODS
        if idempotent:
            await request.aread()
        attempts = order if idempotent else order[:1]
        last: Exception | None = None
        for i, choice in enumerate(attempts):
            try:
                resp = await self.inner.handle_async_request(_forward(request, choice, idempotent))
            except httpx.TransportError as exc:
                self.router.mark_down(choice.region)
                last = exc
                continue
            if idempotent and resp.status_code in RETRY_STATUSES and i < len(attempts) - 1:
                await resp.aclose()
                continue
            _tag(resp, choice)
            return resp
        assert last is not None  # noqa: S101 - at least one attempt ran
        raise last

    async def aclose(self) -> None:
        await self.inner.aclose()


def _tag(resp: httpx.Response, choice: Choice) -> None:
    resp.headers["X-Carbon-Region"] = choice.region
    if choice.intensity_g_per_kwh is not None and "x-carbon-intensity" not in resp.headers:
        resp.headers["X-Carbon-Intensity"] = f"{choice.intensity_g_per_kwh:.1f}"


def describe(router: CarbonRouter) -> dict[str, Any]:
    """The router's current view, for logs and debugging."""
    return {"ranked": [dataclasses.asdict(c) for c in router.ranked()], "last_error": router.last_error}
