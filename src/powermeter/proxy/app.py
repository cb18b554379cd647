"""``powermeter proxy``: a carbon-aware reverse proxy.

An ASGI application (served by uvicorn) that forwards every request to the cleanest healthy
upstream of a configured pool, with ``httpx.AsyncClient``:

- the routing decision (:func:`powermeter.methodology.routing.decide`, with the latency bound,
  carbon weight and hysteresis margin) is recomputed **in the background** every
  ``refresh_interval_s`` and whenever an upstream changes health; a request only reads the current
  order of upstreams, it never fetches grid data;
- request and response bodies are streamed both ways (small idempotent bodies are buffered so they
  can be replayed); upstream requests go through a lean keep-alive HTTP/1.1 client
  (:mod:`powermeter.proxy.upstream`) or ``httpx.AsyncClient`` (``client="httpx"``);
- responses carry ``X-Carbon-Region``, ``X-Carbon-Intensity`` (g CO2e/kWh), ``X-Carbon-Signal`` and
  ``X-Carbon-Provider`` for the upstream that answered;
- idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) that fail to connect, fail before a
  response arrives, or get 502/503/504 are retried on the next upstream; other methods never are;
- upstreams that fail are marked down (passive check) and probed every ``health_interval_s``
  (active check) until they answer again;
- ``GET /.well-known/powermeter-proxy`` (configurable) returns the current decision as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from powermeter.data.grid import GridData, load_grid_data
from powermeter.methodology.routing import Candidate, Policy, decide
from powermeter.proxy.asgi import HOP_BY_HOP, Receive, Scope, Send, body_stream, read_body
from powermeter.proxy.upstream import UpstreamClient, UpstreamError, UpstreamResponse, make_client
from powermeter.routing.providers import IntensityPoint, IntensityProvider, StaticProvider

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({502, 503, 504})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Upstream:
    region: str
    url: str
    name: str = ""
    healthy: bool = True
    failures: int = 0
    last_error: str = ""
    served: int = 0
    _origin: httpx.URL = field(init=False, repr=False)
    _prefix: bytes = field(init=False, repr=False)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    intensity_g_per_kwh: float | None = None

    def __post_init__(self) -> None:
        u = httpx.URL(self.url)
        if u.scheme not in ("http", "https") or not u.host:
            raise ValueError(f"upstream URL must be http(s)://host[:port][/prefix], got {self.url!r}")
        self._origin = u.copy_with(raw_path=b"/")
        self._prefix = u.raw_path.rstrip(b"/") if u.raw_path not in (b"", b"/") else b""
        self.name = self.name or self.region

    def target(self, raw_path: bytes, query: bytes) -> httpx.URL:
        return self._origin.copy_with(raw_path=self.path(raw_path, query))

    def path(self, raw_path: bytes, query: bytes) -> bytes:
        path = self._prefix + raw_path
        return path + b"?" + query if query else path


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    upstreams: Sequence[tuple[str, str]]
    """(region, base URL) pairs; the region is a code the provider knows (CAISO, aws:us-west-2)."""
    source_region: str | None = None
    """Where the proxy runs, for the latency bound (a region or cloud region code)."""
    policy: Policy = field(default_factory=Policy)
    refresh_interval_s: float = 30.0
    health_interval_s: float = 5.0
    health_path: str | None = None
    """Path probed on unhealthy upstreams (any status < 500 = healthy); ``None`` = TCP connect."""
    retry_body_limit: int = 1 << 20
    """Idempotent request bodies up to this size are buffered so they can be replayed."""
    buffer_response_limit: int = 64 << 10
    """Idempotent responses with a Content-Length up to this size are read whole before being sent,
    so a failure while reading them can still be retried elsewhere."""
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 60.0
    max_connections: int = 1000
    status_path: str = "/.well-known/powermeter-proxy"
    client: str = "lean"
    """Upstream HTTP client: ``lean`` (asyncio + httptools keep-alive pool) or ``httpx``."""


class CarbonProxy:
    """The proxy as an ASGI application (it handles ``lifespan`` itself)."""

    def __init__(
        self,
        config: ProxyConfig,
        provider: IntensityProvider | None = None,
        *,
        clock: Callable[[], datetime] = _now,
        grid: GridData | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not config.upstreams:
            raise ValueError("the proxy needs at least one upstream")
        self.config = config
        self.provider: IntensityProvider = provider or StaticProvider()
        self.clock = clock
        self.grid = grid or load_grid_data()
        self.upstreams = [Upstream(region, url) for region, url in config.upstreams]
        self._order: tuple[Upstream, ...] = tuple(self.upstreams)
        self._current_region: str | None = None
        self._decision: dict[str, Any] = {"chosen": None, "refreshed_at": None}
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_pending: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0
        self.upstream_client: UpstreamClient = make_client(
            config.client,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            max_connections=config.max_connections,
            transport=transport,
        )
        # Health probes only (a few requests per interval).
        self.client = httpx.AsyncClient(transport=transport, timeout=config.connect_timeout_s, trust_env=False)
        self._status_path = config.status_path.encode()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """First decision (awaited), then the background refresh and health loops."""
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.config.refresh_interval_s, self.refresh)),
            loop.create_task(self._every(self.config.health_interval_s, self.check_health)),
        ]

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        await self.client.aclose()
        await self.upstream_client.aclose()
        aclose = getattr(self.provider, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()

    async def _every(self, interval_s: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("proxy background task failed")

    # ------------------------------------------------------------------ decision

    async def _points(self, regions: Sequence[str], now: datetime) -> dict[str, IntensityPoint]:
        got = await asyncio.gather(*(self.provider.current(r, now) for r in regions), return_exceptions=True)
        points: dict[str, IntensityPoint] = {}
        for r, p in zip(regions, got, strict=True):
            if isinstance(p, IntensityPoint):
                points[r] = p
            else:
                log.warning("no intensity for %s: %s", r, p)
        # One decision compares like with like: if sources or signals differ, use static for all.
        if len({(p.provider, p.signal) for p in points.values()}) > 1 and not isinstance(self.provider, StaticProvider):
            static = StaticProvider()
            for r in list(points):
                with contextlib.suppress(Exception):
                    points[r] = static.current_nowait(r)
        return points

    async def refresh(self) -> None:
        """Recompute the upstream order from the provider's current data and upstream health."""
        async with self._refresh_lock:
            now = self.clock()
            regions = list(dict.fromkeys(u.region for u in self.upstreams))
            points = await self._points(regions, now)
            src = self.config.source_region
            candidates = []
            healthy_regions = {u.region for u in self.upstreams if u.healthy}
            for r in regions:
                p = points.get(r)
                if p is None:
                    continue
                rtt = self.grid.latency.rtt_ms(src, r) if src else None
                candidates.append(Candidate(r, p.intensity_g_per_kwh, rtt, r in healthy_regions))
            decision = decide(candidates, self.config.policy, self._current_region)
            rank = {rk.region: i for i, rk in enumerate(decision.ranked)}
            for u in self.upstreams:
                p = points.get(u.region)
                u.intensity_g_per_kwh = p.intensity_g_per_kwh if p else None
                u.headers = [
                    (b"x-carbon-region", u.region.encode()),
                    (b"x-carbon-intensity", (f"{p.intensity_g_per_kwh:.1f}" if p else "unknown").encode()),
                    (b"x-carbon-signal", (p.signal if p else "unknown").encode()),
                    (b"x-carbon-provider", (p.provider if p else "none").encode()),
                ]
            n = len(self.upstreams)
            # Feasible regions by rank; then healthy-but-excluded (latency), then the rest (last resort).
            order = sorted(
                range(n),
                key=lambda i: (
                    rank.get(self.upstreams[i].region, n + (0 if self.upstreams[i].healthy else n)),
                    i,
                ),
            )
            self._order = tuple(self.upstreams[i] for i in order)
            if decision.chosen is not None:
                self._current_region = decision.chosen.region
            self.refreshes += 1
            self._decision = {
                "chosen": decision.chosen.region if decision.chosen else None,
                "kept_current": decision.kept_current,
                "best": decision.best.region if decision.best else None,
                "order": [u.name for u in self._order],
                "excluded": [{"region": e.region, "reason": e.reason} for e in decision.excluded],
                "refreshed_at": now.isoformat(),
                "points": {
                    r: {
                        "intensity_g_per_kwh": p.intensity_g_per_kwh,
                        "signal": p.signal,
                        "provider": p.provider,
                        "timestamp": p.timestamp.isoformat(),
                        "fallback_reason": p.fallback_reason,
                    }
                    for r, p in points.items()
                },
            }

    def _schedule_refresh(self) -> None:
        """Refresh soon, in the background (coalesced)."""
        if self._refresh_pending is not None and not self._refresh_pending.done():
            return
        with contextlib.suppress(RuntimeError):
            self._refresh_pending = asyncio.get_running_loop().create_task(self.refresh())

    def _mark_down(self, up: Upstream, error: str) -> None:
        up.failures += 1
        up.last_error = error
        if up.healthy:
            up.healthy = False
            log.warning("upstream %s (%s) marked down: %s", up.name, up.url, error)
            self._schedule_refresh()

    async def _probe(self, up: Upstream) -> bool:
        try:
            if self.config.health_path is None:
                host = up._origin.host
                port = up._origin.port or (443 if up._origin.scheme == "https" else 80)
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.config.connect_timeout_s)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return True
            resp = await self.client.get(
                up.target(self.config.health_path.encode(), b""), timeout=self.config.connect_timeout_s
            )
            return resp.status_code < 500
        except (OSError, TimeoutError, httpx.HTTPError):
            return False

    async def check_health(self) -> None:
        """Probe every upstream; a change in health triggers a new decision."""
        results = await asyncio.gather(*(self._probe(u) for u in self.upstreams))
        changed = False
        for up, ok in zip(self.upstreams, results, strict=True):
            if ok and not up.healthy:
                up.healthy, up.failures = True, 0
                log.info("upstream %s (%s) is back", up.name, up.url)
                changed = True
            elif not ok and up.healthy:
                up.healthy, up.last_error = False, "health probe failed"
                changed = True
        if changed:
            await self.refresh()

    def status(self) -> dict[str, Any]:
        return {
            "decision": self._decision,
            "policy": {
                "carbon_weight": self.config.policy.carbon_weight,
                "max_latency_ms": self.config.policy.max_latency_ms,
                "margin": self.config.policy.margin,
            },
            "source_region": self.config.source_region,
            "provider": getattr(self.provider, "name", "?"),
            "upstreams": [
                {
                    "name": u.name,
                    "region": u.region,
                    "url": u.url,
                    "healthy": u.healthy,
                    "intensity_g_per_kwh": u.intensity_g_per_kwh,
                    "served": u.served,
                    "failures": u.failures,
                    "last_error": u.last_error,
                }
                for u in self.upstreams
            ],
        }

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets are not proxied

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:  # pragma: no cover - reported to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if raw_path == self._status_path and scope["method"] == "GET":
            status_body = orjson.dumps(self.status())
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(status_body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": status_body})
            return

        method: str = scope["method"]
        idempotent = method in IDEMPOTENT_METHODS
        headers, content_length, chunked = self._request_headers(scope)

        # Request body: replayable bytes when small and idempotent, else a one-shot stream.
        body: bytes | None = None
        stream: AsyncIterator[bytes] | None = None
        retryable = idempotent
        if not chunked and not content_length:  # HTTP/1.1: no length, not chunked = no body
            body = b""
        elif idempotent and (content_length is not None and content_length <= self.config.retry_body_limit):
            body = await read_body(receive)
        else:
            stream = body_stream(receive)
            retryable = False

        order = self._order
        attempts = order if retryable else order[:1]
        query: bytes = scope.get("query_string", b"")
        last_error = "no upstream"
        for i, up in enumerate(attempts):
            last = i == len(attempts) - 1
            try:
                resp = await self.upstream_client.request(
                    up._origin, method, up.path(raw_path, query), headers, body, stream
                )
            except UpstreamError as exc:
                last_error = str(exc)
                self._mark_down(up, last_error)
                continue
            if retryable and not last and resp.status in RETRY_STATUSES:
                last_error = f"HTTP {resp.status}"
                up.failures += 1
                await resp.aclose()
                continue
            try:
                done = await self._relay(resp, up, send, retryable=retryable and not last)
            finally:
                await resp.aclose()
            if done:
                up.served += 1
                return
            last_error = up.last_error
        await _send_bad_gateway(send, last_error)

    def _request_headers(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
        out: list[tuple[bytes, bytes]] = []
        content_length: int | None = None
        chunked = False
        host = b""
        forwarded_for = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                continue
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    content_length = int(value)
                continue  # httpx sets it from the content it sends
            if name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
                continue
            if name in HOP_BY_HOP:
                continue
            if name == b"x-forwarded-for":
                forwarded_for = value
                continue
            out.append((name, value))
        client = scope.get("client")
        if client:
            ip = client[0].encode()
            forwarded_for = forwarded_for + b", " + ip if forwarded_for else ip
        if forwarded_for:
            out.append((b"x-forwarded-for", forwarded_for))
        if host:
            out.append((b"x-forwarded-host", host))
        out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if content_length is not None and not chunked:
            out.append((b"content-length", str(content_length).encode()))
        return out, content_length, chunked

    async def _relay(self, resp: UpstreamResponse, up: Upstream, send: Send, *, retryable: bool) -> bool:
        """Send ``resp`` to the client. ``False`` = failed before anything was sent (retry)."""
        headers = [(k, v) for k, v in resp.headers if k.lower() not in HOP_BY_HOP]
        headers.extend(up.headers)
        length = resp.content_length
        if retryable and length is not None and length <= self.config.buffer_response_limit:
            try:
                data = await resp.read()
            except UpstreamError as exc:
                self._mark_down(up, str(exc))
                return False
            await send({"type": "http.response.start", "status": resp.status, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return True
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        try:
            async for chunk in resp.aiter():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            # Headers are out: the only honest signal left is to cut the connection.
            self._mark_down(up, str(exc))
            raise
        await send({"type": "http.response.body", "body": b""})
        return True


async def _send_bad_gateway(send: Send, reason: str) -> None:
    body = orjson.dumps({"error": "bad_gateway", "detail": f"no upstream answered: {reason}"})
    await send(
        {
            "type": "http.response.start",
            "status": 502,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def parse_upstream(spec: str) -> tuple[str, str]:
    """``REGION=URL`` (``CAISO=http://10.0.0.5:8080``)."""
    region, sep, url = spec.partition("=")
    if not sep or not region.strip() or not url.strip():
        raise ValueError(f"upstream must look like REGION=http://host:port, got {spec!r}")
    Upstream(region.strip(), url.strip())  # validates the URL
    return region.strip(), url.strip()
