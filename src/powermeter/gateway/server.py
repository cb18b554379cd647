"""The gateway's HTTP/1.1 server: the common call forwarded by callbacks alone, no coroutine on its path.

:class:`GatewayServer` is the lean HTTP/1.1 server (:mod:`powermeter.proxy.server`) with a fast path for
the requests that make up nearly all LLM API traffic: HTTP/1.1, a body with a Content-Length of at most
1 MiB (or none), no ``Expect``, not ``HEAD``, on a connection with nothing else in flight. Such a request is
read whole by the connection's protocol, routed by :meth:`Gateway.route` (the same code as the ASGI path,
so both forward alike), written to a kept-alive upstream connection of :class:`UpstreamPool` in one
``send``, and the upstream's answer is handled as it arrives, in the upstream protocol's callbacks:

- passed on as it is (unmetered routes, upstream errors), or chunk by chunk with the SSE reader fed
  (streams: each piece the upstream sends is written to the caller in the same event-loop iteration;
  pieces that arrived in one read go out in one ``send``), or read whole to add ``X-Energy-Wh`` /
  ``X-CO2-Grams`` (whole answers up to ``max_buffered_bytes``; larger ones are streamed through and their
  usage read from their first and last 64 KiB);
- the record is computed by :meth:`Gateway._record` and queued by :meth:`Gateway.keep` after the
  answer's last byte, exactly as on the ASGI path.

No task, future or ASGI message per call: on the reference machine this halves the Python work of a
forwarded call (see docs/performance.md, AI gateway). Everything else (chunked or larger request bodies,
``Expect: 100-continue``, HTTP/1.0, ``HEAD``, pipelined requests behind one in flight) goes through the
:class:`~powermeter.gateway.app.Gateway` ASGI application on the same connection, as before.

Behaviour the two paths share: hop-by-hop headers and ``Host`` not forwarded; the answer's bytes
unchanged; an upstream that cannot be reached gets 502, one that sends no response head within
``read_timeout_s`` 504 (both in the gateway's error shape, nothing recorded); a reused keep-alive
connection the upstream had closed is retried once on a new connection for idempotent methods (a POST
takes only a connection idle for less than a second, as the lean client does); a caller that leaves
during a stream ends the upstream call (its connection is closed) and nothing is recorded; a caller that
leaves while a whole answer is awaited does not stop it (the provider bills it: it is recorded).

Inputs are bounded: a request head (request line and headers) larger than ``MAX_HEAD`` bytes gets
``431`` (an unfinished one once it passes ``MAX_HEAD`` + 256 KiB), a metered request body larger than
``max_request_bytes`` gets ``413`` (ASGI path), and the connection is closed after either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

import httptools

from powermeter.gateway.app import (
    SMALL_BODY,
    Answer,
    Gateway,
    Route,
    UpstreamSpec,
    _decoder,
    _scan_large,
    error_answer,
)
from powermeter.gateway.meter import footprint_header
from powermeter.gateway.usage import SSEReader, from_body, wants_usage_injection
from powermeter.proxy.asgi import HOP_BY_HOP
from powermeter.proxy.server import _REASONS, LeanServer, _Request
from powermeter.proxy.server import _Connection as _LeanConnection
from powermeter.proxy.upstream import IDEMPOTENT_METHODS, UpstreamError

log = logging.getLogger(__name__)

MAX_HEAD = 64 << 10
"""Largest request head (request line and headers) accepted, in bytes; larger: 431, connection closed."""
FAST_BODY = SMALL_BODY  # request bodies up to this size (with a Content-Length) take the fast path
_READ_SIZE = 256 << 10  # the most a transport read delivers at once (uvloop)
_WINDOW = 64 << 10  # large whole answers: the usage is read from their first and last 64 KiB
_NO_BODY = frozenset({204, 304})

_Key = tuple[str, str, int]


class _HeadTooLarge(Exception):
    pass


# ---------------------------------------------------------------------- the upstream side


class _UpConn(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection to an upstream; one exchange at a time, reported to its sink
    (an :class:`_Exchange`) by callbacks."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: _Exchange | None = None
        self.closed = False
        self.used = 0
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # Content-Length or chunked: else the body ends with the connection
        self.head_done = False
        self.complete = False
        self.got_bytes = False
        self.keep_alive = False
        self.paused = False  # reading paused: the caller reads slower than the upstream sends
        # the previous answer's (status, headers) and what _Exchange.head made of them (see there)
        self.head_memo: tuple[int, list[tuple[bytes, bytes]], bytes, int | None, bytes, bytes] | None = None

    def begin(self, sink: _Exchange) -> None:
        self.sink = sink
        self.used += 1
        self.status = 0
        self.headers = []
        self.framed = False
        self.head_done = False
        self.complete = False
        self.got_bytes = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # bytes nobody asked for (an idle connection): not reusable
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort()
            if self.sink is sink:
                self.sink = None
                sink.failed(UpstreamError(f"invalid response from upstream: {exc}", response_started=True))
            return
        if self.sink is not sink:  # the exchange let go meanwhile (its caller left)
            return
        try:
            if self.complete:
                self.sink = None
                sink.end(self)
            else:
                sink.flush()
        except Exception:  # a bug: logged, and the call ends (no hanging caller)
            log.exception("gateway: error while passing an answer on")
            sink.crashed()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        if sink is None or self.complete:
            return
        if self.head_done and not self.framed:  # a body delimited by the connection's end: complete
            self.complete = True
            sink.end(self)
            return
        sink.failed(
            UpstreamError(
                f"upstream closed the connection{f': {exc}' if exc else ''}",
                reused=self.used > 1,
                response_started=self.got_bytes,
            )
        )

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if not self.framed:
            lname = name.lower()
            if lname == b"content-length" or lname == b"transfer-encoding":
                self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets after the message
        self.head_done = True
        if self.status in _NO_BODY or self.status < 200:
            self.framed = True
        sink = self.sink
        if sink is not None:
            sink.head(self)

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.body(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused and self.transport is not None and not self.closed:
            self.paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Kept-alive connections per upstream origin, and the read timeout of the responses awaited (one
    periodic sweep for all, not a timer per call)."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_idle_per_origin: int = 256,
        idle_timeout_s: float = 4.0,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle_per_origin
        self.idle_timeout_s = idle_timeout_s
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by the server
        self._idle: dict[_Key, list[_UpConn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.waiting: dict[_Exchange, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_period = min(1.0, max(0.05, read_timeout_s / 8))
        self.connects = 0  # connections opened (tests and the status page read it)

    def acquire(self, key: _Key, max_idle_s: float) -> _UpConn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.closed or now - conn.idle_since > max_idle_s:
                conn.abort()
                continue
            return conn
        return None

    def release(self, conn: _UpConn) -> None:
        if conn.reusable():
            conn.set_paused(False)
            idle = self._idle.get(conn.key)
            if idle is None:
                idle = self._idle[conn.key] = []
            if len(idle) < self.max_idle:
                conn.idle_since = time.monotonic()
                idle.append(conn)
                return
        conn.abort()

    async def connect(self, key: _Key) -> _UpConn:
        scheme, host, port = key
        if scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        self.connects += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _UpConn(key), host, port, ssl=self._ssl if scheme == "https" else None
                ),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc or type(exc).__name__}") from exc
        return conn

    def wait(self, fx: _Exchange) -> None:
        """Watch ``fx``'s response head for the read timeout."""
        self.waiting[fx] = self.loop.time() + self.read_timeout_s
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._sweep_period, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        late = [fx for fx, deadline in self.waiting.items() if now >= deadline]
        for fx in late:
            del self.waiting[fx]
            fx.timed_out(self.read_timeout_s)
        self._sweeper = self.loop.call_later(self._sweep_period, self._sweep) if self.waiting else None

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()


def _origin(up: UpstreamSpec) -> tuple[_Key, bytes]:
    scheme, host = up.origin.scheme, up.origin.host
    default = 443 if scheme == "https" else 80
    port = up.origin.port or default
    return (scheme, host, port), (host.encode() if port == default else f"{host}:{port}".encode())


_LENGTH_REQUIRED = frozenset({"POST", "PUT", "PATCH"})


def request_head(method: str, target: bytes, host_header: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line, Host and ``headers`` of an upstream request, as the lean client writes them
    (Host first, then the headers as given); the fast path adds the Content-Length (for a body, or an
    empty POST/PUT/PATCH), the blank line and the body."""
    parts = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", host_header, b"\r\n"]
    for k, v in headers:
        parts += (k, b": ", v, b"\r\n")
    return b"".join(parts)


def _head_end(prefix: bytes, length: int | None, chunked: bool, keep_alive: bool) -> bytes:
    """:func:`_head` from the status line and headers already written (``prefix``)."""
    if length is not None:
        end = b"content-length: %d\r\n" % length
    elif chunked:
        end = b"transfer-encoding: chunked\r\n"
    else:
        end = b""
    return prefix + end + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n")


def _head(
    status: int, headers: list[tuple[bytes, bytes]], length: int | None, chunked: bool, keep_alive: bool
) -> bytes:
    """A response head as the lean server writes it (Content-Length last; chunked when the length is
    unknown; ``connection: close`` when the connection ends after the answer)."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if length is not None:
        parts += (b"content-length: ", str(length).encode(), b"\r\n")
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


# ---------------------------------------------------------------------- one call


_WAIT, _RELAY, _STREAM, _WHOLE, _LARGE, _DONE = range(6)


class _Exchange:
    """One forwarded call on the fast path, driven by the callbacks of both connections."""

    __slots__ = (
        "chunked",
        "conn",
        "decoder",
        "first",
        "gw",
        "head_window",
        "idempotent",
        "keep_alive",
        "key",
        "mode",
        "out",
        "parts",
        "prefix",
        "request",
        "request_body",
        "retried",
        "route",
        "size",
        "sse",
        "start",
        "status",
        "tail_window",
        "upconn",
    )

    def __init__(
        self, conn: _GwConnection, route: Route, method: str, request: bytes, body: bytes, keep_alive: bool
    ) -> None:
        self.conn = conn
        self.gw = conn.gw
        self.route = route
        self.request = request
        self.request_body = body
        self.keep_alive = keep_alive
        self.idempotent = method in IDEMPOTENT_METHODS
        self.key: _Key = conn.server.origins[route.up.name][0]
        self.mode = _WAIT
        self.upconn: _UpConn | None = None
        self.retried = False
        self.start = 0.0
        self.status = 0
        self.prefix = b""  # the answer's status line and the headers passed on
        self.chunked = False
        self.out: list[bytes] = []
        self.parts: list[bytes] = []
        self.size = 0
        self.sse: SSEReader | None = None
        self.decoder: Callable[[bytes], bytes] | None = None
        self.first: float | None = None
        self.head_window: bytearray | None = None
        self.tail_window: bytearray | None = None

    # -- sending the request

    def run(self) -> None:
        pool = self.conn.server.pool
        self.start = self.gw.clock()
        # a request that must not be replayed takes only a connection idle briefly (as the lean client)
        idle_s = pool.idle_timeout_s if self.idempotent else min(1.0, pool.idle_timeout_s)
        uc = pool.acquire(self.key, idle_s)
        if uc is None:
            self.conn.server.spawn(self._connect())
        else:
            self._send(uc)

    async def _connect(self) -> None:
        try:
            uc = await self.conn.server.pool.connect(self.key)
        except UpstreamError as exc:
            self.failed(exc)
            return
        if self.mode == _DONE:
            uc.abort()
            return
        self._send(uc)

    def _send(self, uc: _UpConn) -> None:
        self.upconn = uc
        uc.begin(self)
        if uc.transport is not None:
            uc.transport.write(self.request)
        if self.conn.write_paused is not None:  # the caller is still behind on the previous answer
            uc.set_paused(True)
        self.conn.server.pool.wait(self)

    # -- the upstream's answer (callbacks of _UpConn)

    def head(self, uc: _UpConn) -> None:
        self.conn.server.pool.waiting.pop(self, None)
        status = self.status = uc.status
        route = self.route
        headers = uc.headers
        memo = uc.head_memo
        if memo is not None and memo[0] == status and memo[1] == headers:
            # the same head as the previous answer on this connection (only Date changes, once a second)
            self.prefix, length, ctype, encoding = memo[2], memo[3], memo[4], memo[5]
        else:
            out = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))]
            length = None
            ctype = b""
            encoding = b""
            for k, v in headers:
                lk = k.lower()
                if lk in HOP_BY_HOP:
                    continue
                if lk == b"content-length":
                    try:  # noqa: SIM105 - suppress() costs an object and two calls per call
                        length = int(v)
                    except ValueError:
                        pass
                    continue  # written last, as the lean server does
                if lk == b"content-type":
                    ctype = v.lower()
                elif lk == b"content-encoding":
                    encoding = v.lower().strip()
                out += (k, b": ", v, b"\r\n")
            self.prefix = b"".join(out)
            uc.head_memo = (status, headers, self.prefix, length, ctype, encoding)
        no_body = status in _NO_BODY or status < 200
        if route.kind is None or not 200 <= status < 300:
            self.mode = _RELAY
        elif ctype.find(b"text/event-stream") >= 0:  # (bytes `in` builds and clears a TypeError first)
            self.mode = _STREAM
            self.sse = SSEReader()
            self.decoder = _decoder(encoding)
        elif length is not None and length > self.gw.config.max_buffered_bytes:
            self.mode = _LARGE
            self.decoder = _decoder(encoding)
            self.head_window, self.tail_window = bytearray(), bytearray()
        else:
            self.mode = _WHOLE
            self.decoder = _decoder(encoding)
            self.size = 0
            return  # the head waits for the body (X-Energy-Wh)
        conn = self.conn
        if conn.closed and self.mode != _LARGE:  # the caller left before the answer: nothing to pass on
            self._drop_upstream()
            if self.mode == _STREAM:
                self.gw.unmetered += 1
            self._finish(None)
            return
        self.chunked = length is None and not no_body
        self.out.append(_head_end(self.prefix, length, self.chunked, self.keep_alive))

    def body(self, chunk: bytes) -> None:
        mode = self.mode
        if mode == _WHOLE:
            self.parts.append(chunk)
            self.size += len(chunk)
            if self.size > self.gw.config.max_buffered_bytes:  # chunked and larger than the limit: streamed
                self.mode = _LARGE
                self.head_window, self.tail_window = bytearray(), bytearray()
                self.chunked = True
                self.out.append(_head_end(self.prefix, None, True, self.keep_alive))
                parts, self.parts = self.parts, []
                for part in parts:
                    self._keep(part)
                    self.out.append(b"%x\r\n%s\r\n" % (len(part), part))
            return
        self.out.append(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk)
        if mode == _STREAM:
            dec = self.decoder
            if self.sse is not None and self.sse.feed(dec(chunk) if dec is not None else chunk) and self.first is None:
                self.first = self.gw.clock()
        elif mode == _LARGE:
            self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        head, tail = self.head_window, self.tail_window
        if head is None or tail is None:
            return
        plain = self.decoder(chunk) if self.decoder is not None else chunk
        if len(head) < _WINDOW:
            head.extend(plain[: _WINDOW - len(head)])
        tail.extend(plain)
        if len(tail) > 2 * _WINDOW:
            del tail[: len(tail) - _WINDOW]

    def flush(self) -> None:
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            conn = self.conn
            if not conn.closed:
                conn.transport.write(data)

    def end(self, uc: _UpConn) -> None:
        conn = self.conn
        pool = conn.server.pool
        pool.waiting.pop(self, None)
        pool.release(uc)
        self.upconn = None
        mode = self.mode
        gw = self.gw
        route = self.route
        line: bytes | None = None
        if mode == _WHOLE:  # (nothing passed on yet: the answer goes out in one write)
            end = gw.clock()
            parts = self.parts
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            dec = self.decoder
            model, usage = from_body(dec(data) if dec is not None else data)
            metered = gw.meter(route.up, model, usage, self.request_body, self.start, None, end, route.tag, True)
            prefix = self.prefix
            if metered is not None:
                line, fp = metered
                if fp is not None:
                    prefix += footprint_header(fp)
            if not conn.closed:
                conn.transport.write(_head_end(prefix, len(data), False, self.keep_alive) + data)
            self._finish(line)
            return
        else:
            if self.chunked:
                self.out.append(b"0\r\n\r\n")
            metered = None
            if mode == _STREAM and self.sse is not None:
                metered = gw.meter(
                    route.up,
                    self.sse.model,
                    self.sse.usage,
                    self.request_body,
                    self.start,
                    self.first,
                    gw.clock(),
                    route.tag,
                )
            elif mode == _LARGE and self.head_window is not None and self.tail_window is not None:
                end = gw.clock()
                model, usage = _scan_large(bytes(self.head_window), bytes(self.tail_window))
                metered = gw.meter(route.up, model, usage, self.request_body, self.start, None, end, route.tag)
            if metered is not None:
                line = metered[0]
        self.flush()
        self._finish(line)

    def failed(self, exc: UpstreamError) -> None:
        """The upstream could not be reached, or failed during its answer."""
        self.conn.server.pool.waiting.pop(self, None)
        self.upconn = None
        if self.mode == _DONE:
            return
        if self.mode == _WAIT:
            if exc.reused and not exc.response_started and self.idempotent and not self.retried:
                self.retried = True  # a kept-alive connection the upstream had just closed: once more
                self.conn.server.spawn(self._connect())
                return
            timeout = isinstance(exc.__cause__, TimeoutError)
            self._answer_error(
                504 if timeout else 502,
                "upstream_timeout" if timeout else "upstream_unreachable",
                f"upstream {self.route.up.name!r}: {exc}",
            )
        elif self.mode == _WHOLE:  # nothing passed on yet
            self._answer_error(502, "upstream_unreachable", f"upstream {self.route.up.name!r}: {exc}")
        else:  # the answer is cut: the caller must not take it as complete
            self.out.clear()
            self.conn.abort()
            self._finish(None)

    def timed_out(self, seconds: float) -> None:
        self._drop_upstream()
        self._answer_error(
            504,
            "upstream_timeout",
            f"upstream {self.route.up.name!r}: upstream sent no response within {seconds:g} s",
        )

    def _answer_error(self, status: int, code: str, message: str) -> None:
        self.keep_alive = self.keep_alive and self.mode == _WAIT
        self.conn.write_answer(error_answer(status, code, message), self.keep_alive)
        self._finish(None)

    # -- the caller

    def caller_left(self) -> None:
        """The caller's connection is gone: a stream (or a passed-on answer) ends the upstream call; a
        whole answer being awaited is left to finish and recorded (the provider bills it)."""
        if self.mode in (_STREAM, _RELAY):
            self._drop_upstream()
            if self.mode == _STREAM:
                self.gw.unmetered += 1
            self._finish(None)

    def _drop_upstream(self) -> None:
        self.conn.server.pool.waiting.pop(self, None)
        uc, self.upconn = self.upconn, None
        if uc is not None:
            uc.sink = None
            uc.abort()

    def _finish(self, line: bytes | None) -> None:
        if self.mode == _DONE:
            return
        self.mode = _DONE
        self.gw.keep(line)
        self.conn.exchange_done(self, self.keep_alive)

    # -- flow control: a caller that reads slowly pauses the upstream

    def pause(self, paused: bool) -> None:
        if self.upconn is not None:
            self.upconn.set_paused(paused)

    def crashed(self) -> None:
        self._drop_upstream()
        self.out.clear()
        if self.mode in (_WAIT, _WHOLE):
            self.keep_alive = False
            self.conn.write_answer(error_answer(500, "gateway_error", "internal error in the gateway"), False)
        else:
            self.conn.abort()
        self._finish(None)


# ---------------------------------------------------------------------- the caller's side


class _GwConnection(_LeanConnection):
    """A caller's connection: the lean server's protocol, with the fast path (module docstring)."""

    server: GatewayServer

    def __init__(self, server: GatewayServer) -> None:
        super().__init__(server)
        self.gw = server.gateway
        self.fx: _Exchange | None = None
        self.busy = _Request(self, {"method": "POST"}, True, False)  # stands for a fast exchange in flight
        self.fast = False  # the request being read takes the fast path
        self.fast_body: list[bytes] = []
        self.fast_method = ""
        self.fast_keep_alive = True
        self.in_head = True
        self.head_seen = 0  # bytes received while a request head was incomplete
        self.head_bytes = 0  # bytes of the current head's URL and headers
        self.content_length: bytes | None = None
        self.body_framing = False  # Transfer-Encoding present
        self.too_large = False
        # the previous fast call's (url, method, request headers, route, upstream request head)
        self.last_route: tuple[bytes, str, list[tuple[bytes, bytes]], Route, bytes] | None = None

    # -- asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self.in_head:  # a head still incomplete: httptools keeps its partial header until it ends
            self.head_seen += len(data)
            if self.head_seen > MAX_HEAD + _READ_SIZE:  # (a read may carry the head's end and body bytes)
                self._reject(431, b"request header fields too large")
                return
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, b"upgrade not supported")
        except httptools.HttpParserError as exc:
            if self.too_large:
                self._reject(431, b"request header fields too large")
                return
            if exc.__context__ is not None:  # raised by the gateway's own code in a callback: a bug
                log.error("gateway: error while serving a request", exc_info=exc.__context__)
                if self.fx is None and self.current is self.busy:
                    self.current = None
            self._reject(400, b"invalid HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        fx = self.fx
        if fx is not None:
            fx.caller_left()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.fx is not None:
            self.fx.pause(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.fx is not None:
            self.fx.pause(False)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect = False
        self.in_head = True
        self.head_seen = 0
        self.head_bytes = 0
        self.content_length = None
        self.body_framing = False

    def on_url(self, url: bytes) -> None:
        self.head_bytes += len(url)
        if self.head_bytes > MAX_HEAD:
            self.too_large = True
            raise _HeadTooLarge
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD:
            self.too_large = True
            raise _HeadTooLarge
        name = name.lower()
        self.headers.append((name, value))
        if name == b"content-length":
            self.content_length = value
        elif name == b"transfer-encoding":
            self.body_framing = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        if (
            self.current is None
            and not self.pending
            and not self.expect
            and not self.body_framing
            and not self.server.stopping
        ):
            parser = self.parser
            method = parser.get_method()
            if method != b"HEAD" and parser.get_http_version() == "1.1":
                cl = self.content_length
                length = 0
                if cl is not None:
                    try:
                        length = int(cl)
                    except ValueError:
                        length = -1
                if 0 <= length <= self.server.fast_body:
                    self.fast = True
                    self.fast_body = []
                    self.fast_method = method.decode("ascii")
                    self.fast_keep_alive = parser.should_keep_alive()
                    self.current = self.busy  # a pipelined request waits behind this one
                    return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.fast:
            self.fast_body.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.fast:
            super().on_message_complete()
            return
        self.fast = False
        parts = self.fast_body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.fast_body = []
        self._serve(body)

    # -- the fast path

    def _serve(self, body: bytes) -> None:
        method = self.fast_method
        url = self.url
        gw = self.gw
        last = self.last_route
        if last is not None and last[0] == url and last[1] == method and last[2] == self.headers:
            # the same request head as the previous call on this connection (an SDK's calls): the same
            # route and upstream request head, without routing the headers again
            route, prefix = last[3], last[4]
            gw.calls += 1
        else:
            if url[:1] == b"/" and url.find(b"?") < 0 and url.find(b"#") < 0:
                raw_path, query = url, b""
            else:
                parsed = httptools.parse_url(url)
                raw_path, query = parsed.path, parsed.query or b""
            routed = gw.route(method, raw_path, self.headers)
            if isinstance(routed, Answer):
                self.last_route = None
                self.server.inflight += 1
                self.write_answer(routed, self.fast_keep_alive)
                self.exchange_done(None, self.fast_keep_alive)
                return
            route = routed
            up = route.up
            target = up.prefix + route.path + (b"?" + query if query else b"")
            prefix = request_head(method, target, self.server.origins[up.name][1], route.headers)
            self.last_route = (url, method, self.headers, route, prefix)
        if route.kind is not None:
            injected = wants_usage_injection(route.kind, body)
            if injected is not None:
                body = injected
            request = b"%scontent-length: %d\r\n\r\n%s" % (prefix, len(body), body)
        elif body or method in _LENGTH_REQUIRED:
            request = b"%scontent-length: %d\r\n\r\n%s" % (prefix, len(body), body)
        else:
            request = prefix + b"\r\n"
        fx = _Exchange(self, route, method, request, body, self.fast_keep_alive)
        self.fx = fx
        self.server.inflight += 1
        fx.run()

    def write_answer(self, answer: Answer, keep_alive: bool) -> None:
        if not self.closed:
            self.transport.write(
                _head(answer.status, [(b"content-type", b"application/json")], len(answer.body), False, keep_alive)
                + answer.body
            )

    def exchange_done(self, fx: _Exchange | None, keep_alive: bool) -> None:
        if fx is not None and self.fx is fx:
            self.fx = None
        self.server.inflight -= 1
        if self.current is self.busy:
            self.current = None
        self.last_active = time.monotonic()
        if self.closed:
            return
        if not keep_alive or self.server.stopping:
            self.abort()
            return
        if self.pending:  # a request pipelined behind this one: the ASGI path serves it
            self._start(self.pending.popleft())
        if not self.pending and self.reading_paused and self.buffered <= (1 << 16):
            self.reading_paused = False
            self.transport.resume_reading()


class GatewayServer(LeanServer):
    """The gateway on its own HTTP/1.1 server, with the fast path (module docstring)."""

    connection_class = _GwConnection

    def __init__(self, gateway: Gateway, host: str, port: int, **kw: Any) -> None:
        super().__init__(gateway, host, port, **kw)
        self.gateway = gateway
        cfg = gateway.config
        self.pool = UpstreamPool(connect_timeout_s=cfg.connect_timeout_s, read_timeout_s=cfg.read_timeout_s)
        self.origins = {u.name: _origin(u) for u in cfg.upstreams}
        self.fast_body = min(FAST_BODY, cfg.max_request_bytes)
        self.inflight = 0  # fast exchanges in flight (shutdown waits for them)
        self._spawned: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def serve(self) -> None:
        self.pool.loop = asyncio.get_running_loop()
        try:
            await super().serve()
        finally:
            self.pool.close()

    def stop(self) -> None:
        """Stop taking new calls; the calls in flight on the fast path end first (at most
        ``shutdown_timeout_s``), then the lean server's own shutdown runs."""
        if self.stopping or self.loop is None:
            super().stop()
            return
        self.stopping = True

        async def drain() -> None:
            deadline = time.monotonic() + self.shutdown_timeout_s
            while self.inflight > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            LeanServer.stop(self)

        with contextlib.suppress(RuntimeError):
            self.spawn(drain())
