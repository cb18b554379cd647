"""Structured request logs, request ids and Prometheus metrics (a pure ASGI middleware)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("powermeter.request")

_HELP = {
    "powermeter_db_unavailable_total": "Requests answered 503/507 because the database was down, full or "
    "read-only, by cause and status.",
}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        # other counters by name and label set (``inc``), and callables adding their own lines
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], int]] = defaultdict(lambda: defaultdict(int))
        self.collectors: list[Callable[[], list[str]]] = []

    def inc(self, name: str, **labels: str) -> None:
        with self._lock:
            self.counters[name][tuple(sorted(labels.items()))] += 1

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            key = (method, route)
            h = self.hist.get(key)
            if h is None:
                h = self.hist[key] = [0] * (len(_BUCKETS) + 1)
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    h[i] += 1
                    break
            else:
                h[-1] += 1
            self.sums[key] += seconds

    def render(self) -> str:
        out = [
            "# HELP powermeter_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE powermeter_http_requests_total counter",
        ]
        with self._lock:
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f'powermeter_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
            out += [
                "# HELP powermeter_http_request_duration_seconds Request latency.",
                "# TYPE powermeter_http_request_duration_seconds histogram",
            ]
            for (m, r), h in sorted(self.hist.items()):
                cum = 0
                for b, n in zip((*_BUCKETS, float("inf")), h, strict=True):
                    cum += n
                    le = "+Inf" if b == float("inf") else repr(b)
                    out.append(
                        f'powermeter_http_request_duration_seconds_bucket{{method="{m}",route="{r}",le="{le}"}} {cum}'
                    )
                out.append(f'powermeter_http_request_duration_seconds_count{{method="{m}",route="{r}"}} {cum}')
                out.append(
                    f'powermeter_http_request_duration_seconds_sum{{method="{m}",route="{r}"}} {self.sums[(m, r)]:.6f}'
                )
            for name, series in sorted(self.counters.items()):
                out += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
                for labels, n in sorted(series.items()):
                    text = ",".join(f'{k}="{v}"' for k, v in labels)
                    out.append(f"{name}{{{text}}} {n}")
        for collect in self.collectors:
            out += collect()
        return "\n".join(out) + "\n"


def _ratelimit_headers(scope: Scope) -> dict[str, str] | None:
    """The ``RateLimit-*`` headers the authentication/quota dependency stored for this request
    (``request.state.ratelimit_headers``, which lives in ``scope["state"]``)."""
    state = scope.get("state")
    if not state:
        return None
    h = state.get("ratelimit_headers") if isinstance(state, dict) else getattr(state, "ratelimit_headers", None)
    return h if isinstance(h, dict) else None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        rid = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
                break
        rid = rid or secrets.token_hex(8)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                limits = _ratelimit_headers(scope)
                if limits:
                    # The quota dependency computed them, but a route that returns its own Response
                    # object drops the dependency's headers: add any the response does not carry.
                    have = {k.lower() for k, _ in headers}
                    headers.extend(
                        (k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in limits.items()
                        if k.lower().encode("latin-1") not in have
                    )
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.observe(scope["method"], template, status, elapsed)
            if self.log_requests:
                log_request(scope, rid, template, status, elapsed)


def log_request(scope: Scope, rid: str, template: str, status: int, elapsed: float) -> None:
    """One structured log line per request (the middleware's and the compiled routes', alike)."""
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    log.info(
        orjson.dumps(
            {
                "event": "request",
                "request_id": rid,
                "method": scope["method"],
                "path": scope["path"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": client[0] if client else None,
            }
        ).decode()
    )
