"""ASGI plumbing shared by the carbon-aware proxy and the AI gateway: message types, the hop-by-hop
header set, request-body helpers and the uvicorn server both run under."""

from __future__ import annotations

import asyncio
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


class _CoalescingTransport:
    """A transport whose writes of one event-loop iteration go out in one ``send``.

    uvicorn writes a response's head and its body separately; on loopback each ``send`` runs the
    receiver's TCP path too, so two writes cost nearly twice one. Here writes are joined and flushed by
    a callback scheduled on the first write of an iteration (the next iteration at the latest: a streamed
    chunk is not held back). Everything else goes to the real transport."""

    __slots__ = ("_buf", "_loop", "_t")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._loop = loop
        self._buf: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._buf:
            self._loop.call_soon(self._flush)
        self._buf.append(bytes(data))

    def _flush(self) -> None:
        buf = self._buf
        if buf:
            self._buf = []
            if not self._t.is_closing():  # the caller left meanwhile: nothing to deliver
                self._t.write(buf[0] if len(buf) == 1 else b"".join(buf))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self._flush()
        self._t.close()

    def write_eof(self) -> None:
        self._flush()
        self._t.write_eof()

    def get_write_buffer_size(self) -> int:
        return int(self._t.get_write_buffer_size()) + sum(len(b) for b in self._buf)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


def _coalescing_protocol() -> type:
    """uvicorn's httptools protocol writing through :class:`_CoalescingTransport`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    return CoalescingHttpToolsProtocol


def build_server(app: ASGIApp, host: str, port: int, *, log_level: str = "warning") -> Any:
    """A ``uvicorn.Server`` for ``app`` (the upstream's Server and Date headers pass through).

    httptools protocol with coalesced writes (one ``send`` per response where uvicorn makes two); no
    X-Forwarded-* rewriting of ``scope["client"]`` (neither the proxy nor the gateway reads it, and the
    middleware costs a call per request)."""
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
        http=_coalescing_protocol(),
        proxy_headers=False,
    )
    return uvicorn.Server(config)


async def serve(app: ASGIApp, host: str, port: int, *, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn until interrupted."""
    await build_server(app, host, port, log_level=log_level).serve()
