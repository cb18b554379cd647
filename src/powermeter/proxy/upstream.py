"""Upstream HTTP clients for the proxy.

Two implementations of one small interface (:class:`UpstreamClient` → :class:`UpstreamResponse`):

- :class:`LeanClient` (default): HTTP/1.1 over asyncio protocols with the ``httptools`` C parser and a
  keep-alive pool per upstream. The proxy's own cost per request is dominated by its upstream
  client; measured on the reference machine, ``httpx.AsyncClient`` costs about 4× what the upstream
  FastAPI app spends serving the request (pure-Python h11 parsing and anyio streams), which would
  cap the proxy far below the throughput goal. This client keeps to what a reverse proxy needs:
  one request at a time per connection, streaming both ways, Content-Length or chunked bodies.
- :class:`HttpxClient`: ``httpx.AsyncClient`` (``--client httpx``), for upstreams that need what the
  lean client does not do (HTTP/2, proxies from the environment).

Both raise :class:`UpstreamError` with ``sent=False`` when nothing reached the upstream (safe to
retry anywhere) and ``response_started`` telling whether response bytes had arrived.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import httptools
import httpx


class UpstreamError(Exception):
    def __init__(self, message: str, *, reused: bool = False, response_started: bool = False) -> None:
        super().__init__(message)
        self.reused = reused
        self.response_started = response_started


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]
    content_length: int | None

    async def read(self) -> bytes: ...

    async def next_chunk(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        ...

    def take_complete(self) -> bytes | None:
        """The whole body when it has already arrived, else ``None`` (then read it with the methods above)."""
        ...

    def aiter(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def request(
        self,
        origin: httpx.URL,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------- lean HTTP/1.1 client

_MAX_BUFFERED = 1 << 20  # pause reading from the upstream above 1 MiB of unsent response body
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to an upstream; one request at a time."""

    def __init__(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        # the loop, kept: asyncio.get_running_loop() (and asyncio.Event's wait) cost a getpid() system
        # call each on Python 3.11, several per request otherwise
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: BaseException | None = None
        self.used = 0
        self.idle_since = 0.0
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.got_bytes = False
        self.waiter: asyncio.Future[None] | None = None  # set while the reader waits for body bytes
        self.reading_paused = False
        self.head_request = False
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (create_connection); uvloop's are not asyncio.Transport subclasses, so no
        # isinstance check: they have the same read/write/pause methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid response from upstream: {exc}", response_started=True))
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(
                UpstreamError(
                    f"upstream closed the connection{f': {exc}' if exc else ''}",
                    reused=self.used > 1,
                    response_started=self.got_bytes,
                )
            )
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if not self.headers_done.done():
            self.headers_done.set_exception(exc)
            self.headers_done.exception()  # retrieved here; re-raised to the waiter
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets after the message
        if not self.headers_done.done():
            self.headers_done.set_result(None)
        if self.head_request:
            self.complete = True  # a HEAD response has no body, whatever its headers say
            self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _MAX_BUFFERED and not self.reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # client side
    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("upstream connection closed before the request was sent", reused=self.used > 1)
        self.transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.error is None and not self.head_request and self.keep_alive


def _time_out(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class _LeanResponse:
    def __init__(self, pool: LeanClient, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.content_length: int | None = None
        for k, v in conn.headers:
            if k.lower() == b"content-length":
                try:  # noqa: SIM105 - suppress() costs an object and two calls per call
                    self.content_length = int(v)
                except ValueError:
                    pass
        self._released = False

    def take_complete(self) -> bytes | None:
        c = self._conn
        if not c.complete or c.error is not None:
            return None
        chunks = c.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        c.buffered = 0
        return data

    async def next_chunk(self) -> bytes:
        """The next piece of the body, ``b""`` at its end. A plain coroutine: cheaper per call than an
        async generator (which the event loop registers in a weak set on its first iteration)."""
        c = self._conn
        while True:
            if c.chunks:
                chunk = c.chunks.popleft()
                c.buffered -= len(chunk)
                if c.reading_paused and c.buffered < _MAX_BUFFERED // 2 and c.transport is not None:
                    c.transport.resume_reading()
                    c.reading_paused = False
                if chunk:
                    return chunk
            elif c.complete:
                return b""
            elif c.error is not None:
                raise c.error
            else:
                c.waiter = c.loop.create_future()
                try:
                    await c.waiter
                finally:
                    c.waiter = None

    async def aiter_gen(self) -> AsyncIterator[bytes]:
        while chunk := await self.next_chunk():
            yield chunk

    def aiter(self) -> AsyncIterator[bytes]:
        return self.aiter_gen()

    async def read(self) -> bytes:
        chunk = await self.next_chunk()
        if not chunk:
            return b""
        rest = await self.next_chunk()
        if not rest:
            return chunk  # the usual case: the whole body arrived in one read
        parts = [chunk, rest]
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._conn)


class LeanClient:
    """Keep-alive HTTP/1.1 pool per upstream origin (see the module docstring)."""

    def __init__(
        self,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 60.0,
        max_idle_per_origin: int = 256,
        idle_timeout_s: float = 4.0,
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle_per_origin
        self.idle_timeout_s = idle_timeout_s
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        # responses awaited: their head's future → deadline; one call_later re-armed while any wait, so a
        # read timeout fires between read_timeout_s and read_timeout_s + _sweep_period after the request
        self._waiting: dict[asyncio.Future[None], float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_period = min(1.0, max(0.05, read_timeout_s / 8))
        # per origin object (callers pass the same URL object for an upstream): its pool key and the
        # Host header, which httpx.URL's properties would otherwise compute again for every request
        self._origins: dict[int, tuple[httpx.URL, tuple[str, str, int], bytes]] = {}

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for fut, deadline in list(self._waiting.items()):
            if now >= deadline:
                _time_out(fut)
        self._sweeper = loop.call_later(self._sweep_period, self._sweep, loop) if self._waiting else None

    def _key(self, origin: httpx.URL) -> tuple[str, str, int]:
        port = origin.port or (443 if origin.scheme == "https" else 80)
        return (origin.scheme, origin.host, port)

    def _origin(self, origin: httpx.URL) -> tuple[tuple[str, str, int], bytes]:
        hit = self._origins.get(id(origin))
        if hit is not None and hit[0] is origin:
            return hit[1], hit[2]
        key = self._key(origin)
        scheme, host, port = key
        host_header = host.encode() if port == (443 if scheme == "https" else 80) else f"{host}:{port}".encode()
        if len(self._origins) > 1024:
            self._origins.clear()
        self._origins[id(origin)] = (origin, key, host_header)  # the URL is kept: its id stays unique
        return key, host_header

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        if scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(key, loop), host, port, ssl=self._ssl if scheme == "https" else None
                ),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc or type(exc).__name__}") from exc
        return conn

    def _acquire_idle(self, key: tuple[str, str, int], max_idle_s: float) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.closed or now - conn.idle_since > max_idle_s:
                if conn.transport is not None:
                    conn.transport.close()
                continue
            return conn
        return None

    def release(self, conn: _Connection) -> None:
        if conn.reusable():
            idle = self._idle.get(conn.key)
            if idle is None:  # (not setdefault: it would build a deque per call)
                idle = self._idle[conn.key] = deque()
            if len(idle) < self.max_idle:
                conn.idle_since = time.monotonic()
                idle.append(conn)
                return
        if conn.transport is not None:
            conn.transport.close()

    async def request(
        self,
        origin: httpx.URL,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        key, host_header = self._origin(origin)
        idempotent = method in IDEMPOTENT_METHODS
        # A request that must not be replayed only takes a connection that was idle briefly, so the
        # upstream is unlikely to be closing it (keep-alive timeouts are ≥ 5 s in common servers).
        conn = self._acquire_idle(key, self.idle_timeout_s if idempotent else min(1.0, self.idle_timeout_s))
        fresh = conn is None
        if conn is None:
            conn = await self._connect(key)
        try:
            return await self._send(conn, host_header, method, target, headers, body, stream)
        except UpstreamError as exc:
            if conn.transport is not None:
                conn.transport.close()
            # A reused keep-alive connection the upstream had just closed: the request goes again on a
            # new connection (once; idempotent requests with a replayable body only).
            if not fresh and not exc.response_started and stream is None and idempotent:
                conn = await self._connect(key)
                try:
                    return await self._send(conn, host_header, method, target, headers, body, None)
                except UpstreamError:
                    if conn.transport is not None:
                        conn.transport.close()
                    raise
            raise

    async def _send(
        self,
        conn: _Connection,
        host_header: bytes,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        conn._reset()
        conn.used += 1
        conn.head_request = method == "HEAD"
        parts = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", host_header, b"\r\n"]
        has_length = False
        for k, v in headers:
            parts.extend((k, b": ", v, b"\r\n"))
            if k == b"content-length":
                has_length = True
        if stream is None:
            data = body or b""
            if not has_length and (data or method in ("POST", "PUT", "PATCH")):
                parts += [b"content-length: ", str(len(data)).encode(), b"\r\n"]
            parts += [b"\r\n", data]
            await conn.write(b"".join(parts))
        else:
            if not has_length:
                parts.append(b"transfer-encoding: chunked\r\n")
            parts.append(b"\r\n")
            await conn.write(b"".join(parts))
            async for chunk in stream:
                if not chunk:
                    continue
                if not has_length:
                    await conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    await conn.write(chunk)
            if not has_length:
                await conn.write(b"0\r\n\r\n")
        done = conn.headers_done
        if not done.done():
            # the deadline is watched by one periodic sweep (see _sweep): cheaper per request than a
            # timer of its own, let alone wait_for(shield(...))
            loop = conn.loop
            self._waiting[done] = loop.time() + self.read_timeout_s
            if self._sweeper is None:
                self._sweeper = loop.call_later(self._sweep_period, self._sweep, loop)
            try:
                await done
            except TimeoutError as exc:
                raise UpstreamError(f"upstream sent no response within {self.read_timeout_s:g} s") from exc
            finally:
                del self._waiting[done]
        elif done.exception() is not None:
            raise cast(BaseException, done.exception())
        return _LeanResponse(self, conn)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()


# ---------------------------------------------------------------------- httpx client


class _HttpxResponse:
    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = list(resp.headers.raw)
        length = resp.headers.get("content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._it: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        except httpx.TransportError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}", response_started=True) from exc

    async def _gen(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}", response_started=True) from exc

    def aiter(self) -> AsyncIterator[bytes]:
        return self._gen()

    def take_complete(self) -> bytes | None:
        return None  # httpx streams: read with next_chunk()

    async def next_chunk(self) -> bytes:
        if self._it is None:
            self._it = self._gen()
        try:
            return await anext(self._it)
        except StopAsyncIteration:
            return b""

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxClient:
    def __init__(
        self,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 60.0,
        max_connections: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s)
        self.client = httpx.AsyncClient(
            transport=transport, limits=limits, timeout=timeout, trust_env=False, follow_redirects=False
        )

    async def request(
        self,
        origin: httpx.URL,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        stream: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        url = origin.copy_with(raw_path=target)
        req = self.client.build_request(method, url, headers=headers, content=body if stream is None else stream)
        try:
            resp = await self.client.send(req, stream=True)
        except httpx.TransportError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from exc
        return _HttpxResponse(resp)

    async def aclose(self) -> None:
        await self.client.aclose()


def make_client(kind: str, **kw: Any) -> UpstreamClient:
    if kind == "lean":
        kw.pop("transport", None)
        kw.pop("max_connections", None)
        return LeanClient(**kw)
    if kind == "httpx":
        return HttpxClient(**kw)
    raise ValueError(f"unknown upstream client {kind!r}: use lean or httpx")
