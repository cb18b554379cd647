"""A lean HTTP/1.1 server for the gateway's ASGI application (asyncio protocol + ``httptools``).

The gateway's cost per call is two HTTP exchanges (the caller's, the upstream's). The upstream side is the
lean client (:mod:`powermeter.proxy.upstream`); this is its server-side counterpart, doing only what a
forwarding hop needs, with fewer steps per request than uvicorn's general-purpose protocol (no per-request
keep-alive timer, no flow-control objects per request, the response head and its first body chunk in
one ``send``):

- HTTP/1.1 and 1.0, keep-alive (idle connections closed after ``keep_alive_s``), pipelined requests
  answered in order, request bodies with Content-Length or chunked (``Expect: 100-continue`` answered
  on the first ``receive``), streamed responses (Content-Length as given, else chunked), write flow
  control (a slow reader pauses the application's ``send``);
- ``http.disconnect`` when the caller goes away (also while a response is being streamed);
- the ASGI ``lifespan`` protocol (start-up before listening; shutdown after in-flight requests end,
  on SIGINT/SIGTERM), so the gateway's recorder flushes its spool as under uvicorn.

No TLS, no HTTP/2, no WebSocket upgrade: put it behind a TLS terminator when callers are remote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import httptools

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_ASGI = {"version": "3.0", "spec_version": "2.3"}  # the same object in every scope (applications only read it)
_MAX_REQUEST_BUFFER = 1 << 16  # pause reading from a caller above 64 KiB of unread request body
_REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    304: b"Not Modified",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


class _Request:
    """One request/response exchange on a connection: the ASGI ``receive`` and ``send``."""

    __slots__ = (
        "body_done",
        "chunked",
        "chunks",
        "conn",
        "expect_continue",
        "final_sent",
        "head",
        "head_only",
        "keep_alive",
        "length_left",
        "response_done",
        "scope",
        "started",
        "waiter",
    )

    def __init__(self, conn: _Connection, scope: Scope, keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.chunks: deque[bytes] = deque()
        self.body_done = False
        self.final_sent = False
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.response_done = False
        self.head = b""
        self.head_only = scope["method"] == "HEAD"  # a HEAD request: the answer has no body
        self.chunked = False
        self.length_left: int | None = None

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue and not self.chunks and not self.body_done and not conn.closed:
            self.expect_continue = False
            conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.chunks:
                body = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
                self.chunks.clear()
                conn.buffered = 0
                if conn.reading_paused and not conn.closed:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                more = not self.body_done
                if not more:
                    self.final_sent = True
                return {"type": "http.request", "body": body, "more_body": more}
            if self.body_done and not self.final_sent:
                self.final_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if conn.closed or self.response_done:
                return {"type": "http.disconnect"}
            self.waiter = conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message: Message) -> None:
        conn = self.conn
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            status = int(message["status"])
            parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))]
            length: int | None = None
            for name, value in message.get("headers", ()):
                lname = name.lower()
                if lname == b"content-length":
                    try:  # noqa: SIM105 - suppress() costs an object and two calls per call
                        length = int(value)
                    except ValueError:
                        pass
                    continue
                if lname == b"transfer-encoding":
                    continue  # the server frames the body
                if lname == b"connection" and value.lower() == b"close":
                    self.keep_alive = False
                    continue
                parts.extend((name, b": ", value, b"\r\n"))
            no_body = self.head_only or status in (204, 304) or 100 <= status < 200
            if length is not None:
                parts += [b"content-length: ", str(length).encode(), b"\r\n"]
                self.length_left = 0 if no_body else length
            elif not no_body and self.scope["http_version"] == "1.0":
                self.keep_alive = False  # HTTP/1.0 has no chunked coding: the body ends when the connection does
            elif not no_body:
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.length_left = 0
            if not self.keep_alive:
                parts.append(b"connection: close\r\n")
            parts.append(b"\r\n")
            self.head = b"".join(parts)  # sent with the first body chunk
            return
        if kind != "http.response.body":
            return
        if not self.started:
            raise RuntimeError("http.response.body before http.response.start")
        if self.response_done:
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.head_only:
            body = b""
        if self.chunked:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            if self.length_left is not None:
                if len(body) > self.length_left:
                    raise RuntimeError("response body longer than its Content-Length")
                self.length_left -= len(body)
            out = body
        if self.head:
            out = self.head + out
            self.head = b""
        if out and not conn.closed:
            conn.write(out)
        if not more:
            self.response_done = True
            if self.length_left:
                conn.abort()  # shorter than announced: the caller must not take it as complete
            self.wake()
        elif conn.write_paused is not None:
            await conn.write_paused


class _Connection(asyncio.Protocol):
    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.closed = False
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect = False
        self.current: _Request | None = None
        self.idle_worker: asyncio.Future[_Request | None] | None = None  # the connection's task, between requests
        self.reading_request: _Request | None = None
        self.pending: deque[_Request] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.write_paused: asyncio.Future[None] | None = None
        self.last_active = time.monotonic()
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.local = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else None
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, b"upgrade not supported")
        except httptools.HttpParserError:
            self._reject(400, b"invalid HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        idle, self.idle_worker = self.idle_worker, None
        if idle is not None and not idle.done():
            idle.set_result(None)  # the connection's task ends
        for req in (self.current, self.reading_request, *self.pending):
            if req is not None:
                req.wake()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def pause_writing(self) -> None:
        if self.write_paused is None:
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        fut, self.write_paused = self.write_paused, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.headers.append((name, value))
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        url = self.url
        raw_path: bytes
        query: bytes
        if url[:1] == b"/" and url.find(b"?") < 0 and url.find(b"#") < 0:  # (bytes `in` raises inside)
            raw_path, query = url, b""  # origin-form without a query: nothing to split
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path, parsed.query or b""
        scope: Scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": self.parser.get_http_version(),
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": self.parser.get_method().decode("ascii"),
            "root_path": "",
            "path": unquote(raw_path.decode("ascii", "surrogateescape"))
            if b"%" in raw_path
            else raw_path.decode("latin-1"),
            "raw_path": raw_path,
            "query_string": query,
            "headers": self.headers,
        }
        req = _Request(self, scope, self.parser.should_keep_alive(), self.expect)
        self.reading_request = req
        if self.current is None:
            self._start(req)
        else:
            self.pending.append(req)
            self._pause_reading()  # one pipelined request is read ahead, no more

    def on_body(self, body: bytes) -> None:
        req = self.reading_request
        if req is None:
            return
        req.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _MAX_REQUEST_BUFFER:
            self._pause_reading()
        req.wake()

    def on_message_complete(self) -> None:
        req = self.reading_request
        if req is not None:
            req.body_done = True
            req.wake()
        self.reading_request = None

    # -- the exchange

    def _start(self, req: _Request) -> None:
        self.current = req
        self.buffered = sum(map(len, req.chunks))
        idle = self.idle_worker
        if idle is not None:  # the connection's task waits for its next request
            self.idle_worker = None
            idle.set_result(req)
            return
        task = self.loop.create_task(self._work(req))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _work(self, req: _Request) -> None:
        """Serve the connection's requests one after another: one task per connection, not one per
        request (creating and registering a task costs more than the wake-up of a waiting one). So
        context variables an application sets stay set for the next request on the connection."""
        while await self._run(req):
            nxt: _Request | None = None
            if self.pending:
                nxt = self.pending.popleft()
                self.current = nxt
                self.buffered = sum(map(len, nxt.chunks))
            if not self.pending and self.reading_paused and self.buffered <= _MAX_REQUEST_BUFFER:
                self.reading_paused = False
                self.transport.resume_reading()
            if nxt is None:
                fut: asyncio.Future[_Request | None] = self.loop.create_future()
                self.idle_worker = fut
                nxt = await fut  # the next request (from _start), or None when the connection is gone
                if nxt is None:
                    return
            req = nxt

    async def _run(self, req: _Request) -> bool:
        """One exchange; ``True`` when the connection stays open for the next request."""
        try:
            await self.app(req.scope, req.receive, req.send)
        except Exception:
            log.exception("error in the ASGI application")
            if not req.started and not self.closed:
                req.keep_alive = False
                with contextlib.suppress(Exception):
                    await req.send(
                        {
                            "type": "http.response.start",
                            "status": 500,
                            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"21")],
                        }
                    )
                    await req.send({"type": "http.response.body", "body": b"Internal Server Error"})
            else:
                self.abort()
                return False
        if not req.response_done:
            if req.started and not self.closed:
                self.abort()  # the application ended without finishing its response
                return False
            if not self.closed:
                req.keep_alive = False
                await req.send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
                await req.send({"type": "http.response.body", "body": b""})
        self.last_active = time.monotonic()
        self.current = None
        if self.closed:
            return False
        if not req.body_done:
            req.keep_alive = False  # the rest of an unread request body would have to be drained: close instead
        if not req.keep_alive or self.server.stopping:
            self.transport.close()
            self.closed = True
            return False
        return True

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def _reject(self, status: int, reason: bytes) -> None:
        if self.current is None and not self.closed:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, _REASONS.get(status, b""), len(reason), reason)
            )
        self.abort()

    def idle_for(self, now: float) -> float:
        return now - self.last_active if self.current is None and not self.pending else 0.0


class LeanServer:
    """Serve ``app`` on ``host:port`` until :meth:`stop` (or SIGINT/SIGTERM under :meth:`run`)."""

    connection_class: type[_Connection] = _Connection  # a subclass may serve some requests itself

    def __init__(
        self, app: ASGIApp, host: str, port: int, *, keep_alive_s: float = 30.0, shutdown_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.keep_alive_s = keep_alive_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._stop: asyncio.Event | None = None
        self._lifespan: asyncio.Queue[Message] | None = None
        self._lifespan_out: asyncio.Queue[Message] | None = None

    async def _lifespan_call(self, message: str) -> None:
        if self._lifespan is None or self._lifespan_out is None:
            raise RuntimeError("serve() not started")
        await self._lifespan.put({"type": f"lifespan.{message}"})
        reply = await self._lifespan_out.get()
        if reply["type"].endswith(".failed"):
            raise RuntimeError(f"lifespan {message} failed: {reply.get('message', '')}")

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._lifespan, self._lifespan_out = asyncio.Queue(), asyncio.Queue()
        lifespan_scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        lifespan: asyncio.Future[None] = asyncio.ensure_future(
            self.app(lifespan_scope, self._lifespan.get, self._lifespan_out.put)
        )
        await self._lifespan_call("startup")
        server = await self.loop.create_server(lambda: self.connection_class(self), self.host, self.port, backlog=2048)
        sweeper = self.loop.create_task(self._sweep())
        try:
            await self._stop.wait()
        finally:
            self.stopping = True
            server.close()
            sweeper.cancel()
            for conn in list(self.connections):
                if conn.current is None:
                    conn.abort()
            deadline = time.monotonic() + self.shutdown_timeout_s
            while self.tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for conn in list(self.connections):
                conn.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lifespan_call("shutdown"), self.shutdown_timeout_s)
            lifespan.cancel()
            with contextlib.suppress(BaseException):
                await lifespan

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than ``keep_alive_s``."""
        while True:
            await asyncio.sleep(min(5.0, self.keep_alive_s))
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle_for(now) > self.keep_alive_s:
                    conn.abort()

    def run(self) -> None:
        """Run on uvloop when installed; SIGINT and SIGTERM stop gracefully."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
            await self.serve()

        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency of uvicorn[standard]
            asyncio.run(main())
        else:
            uvloop.run(main())
