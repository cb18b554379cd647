"""ASGI plumbing shared by the carbon-aware proxy and the AI gateway: message types, the hop-by-hop
header set, request-body helpers and the uvicorn server both run under."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# RFC 9110 §7.6.1 hop-by-hop fields, plus Host (set from the upstream URL).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        parts.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            break
    return b"".join(parts)


async def body_stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        chunk = msg.get("body", b"")
        if chunk:
            yield chunk
        if not msg.get("more_body", False):
            return


def parse_listen(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must look like HOST:PORT, got {spec!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_server(app: ASGIApp, host: str, port: int, *, log_level: str = "warning") -> Any:
    """A ``uvicorn.Server`` for ``app`` (the upstream's Server and Date headers pass through)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        lifespan="on",
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


async def serve(app: ASGIApp, host: str, port: int, *, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn until interrupted."""
    await build_server(app, host, port, log_level=log_level).serve()
