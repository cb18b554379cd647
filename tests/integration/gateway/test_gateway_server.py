"""The gateway's own HTTP/1.1 server (``GatewayServer``: the callback fast path and the ASGI path behind
it) against a small real upstream on loopback, with raw sockets where the wire matters: keep-alive and
pipelining, large and chunked request bodies, a caller leaving mid-stream, the upstream connection
reused and closed under it, timeouts, bounded inputs, and the same bytes as the ASGI path. No mocks:
the records go to a real spool (the powermeter server is away, so they stay there and are counted)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from powermeter.gateway.app import Gateway, GatewayConfig, make_upstream
from powermeter.gateway.recorder import Recorder, Spool
from powermeter.gateway.server import MAX_HEAD, GatewayServer
from powermeter.proxy.server import LeanServer
from tests.integration.routing.conftest import free_port

CHAT = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}}],
        "usage": {"prompt_tokens": 500, "completion_tokens": 300, "total_tokens": 800},
    }
)
USAGE = {"prompt_tokens": 12, "completion_tokens": 4}
_BASE = {"id": "c2", "object": "chat.completion.chunk", "model": "gpt-4o"}
SSE = [
    b"data: " + orjson.dumps({**_BASE, "choices": [{"index": 0, "delta": {"content": w}}]}) + b"\n\n"
    for w in ("Hel", "lo")
] + [
    b"data: "
    + orjson.dumps({**_BASE, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}})
    + b"\n\n",
    b"data: [DONE]\n\n",
]


@dataclass
class Upstream:
    """A raw HTTP/1.1 upstream; behaviour chosen by the request path (see ``handle``)."""

    port: int = 0
    connections: int = 0
    big_sent: int = 0
    requests: list[dict[str, object]] = field(default_factory=list)
    stream_closed: asyncio.Event | None = None

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        headers = [(k.strip().lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines[1:])]
        h = dict(headers)
        body = b""
        if b"content-length" in h:
            body = await reader.readexactly(int(h[b"content-length"]))
        elif h.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += (await reader.readexactly(size + 2))[:-2]
        return lines[0], headers, body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line, headers, body = await self.read_request(reader)
                method, target, _ = line.split(b" ")
                path = target.split(b"?")[0]
                self.requests.append({"method": method, "target": target, "headers": headers, "body": body})
                if b"/slow" in path:
                    await asyncio.sleep(0.3)
                if b"/hang" in path:
                    await asyncio.sleep(3600)
                if b"/drop" in path:  # reads the request, closes without answering
                    writer.close()
                    return
                if b"/sse" in path or b'"stream":true' in body:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    )
                    for i, ev in enumerate(SSE):
                        if i == 1 and b"/hold" in path:  # holds the rest until the gateway lets go
                            await writer.drain()
                            if await reader.read(1) == b"" and self.stream_closed is not None:
                                self.stream_closed.set()
                            return
                        writer.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                elif b"/echo" in path:
                    out = orjson.dumps(
                        {
                            "method": method.decode(),
                            "target": target.decode(),
                            "length": len(body),
                            "sha256": hashlib.sha256(body).hexdigest(),
                            "headers": [[k.decode(), v.decode()] for k, v in headers],
                        }
                    )
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                        % (len(out), out)
                    )
                elif b"/big" in path:  # 32 MiB, as fast as the reader takes it
                    piece = b"z" * (64 << 10)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % BIG)
                    for _ in range(BIG // len(piece)):
                        writer.write(piece)
                        await writer.drain()
                        self.big_sent += len(piece)
                elif b"/nocontent" in path:
                    writer.write(b"HTTP/1.1 204 No Content\r\nx-upstream: 1\r\n\r\n")
                elif b"/error" in path:
                    err = b'{"error":{"message":"the fake failed"}}'
                    writer.write(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(err), err)
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: r1\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
                    )
                await writer.drain()
                if b"/close-after" in path:  # answers, then closes the kept-alive connection
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass
class Running:
    base: str
    port: int
    gw: Gateway
    upstream: Upstream
    loop: asyncio.AbstractEventLoop
    spool: Spool
    server: LeanServer


@contextlib.contextmanager
def running(tmp: Path, *, asgi_only: bool = False, **config: object) -> Iterator[Running]:
    up = Upstream(port=free_port())
    gw_port = free_port()
    spool = Spool(tmp / f"spool-{gw_port}")
    recorder = Recorder(spool, f"http://127.0.0.1:{free_port()}", "pm-key", flush_interval_s=3600)  # server away
    gw = Gateway(
        GatewayConfig(upstreams=(make_upstream("openai", f"http://127.0.0.1:{up.port}"),), **config),  # type: ignore[arg-type]
        recorder,
    )
    srv: LeanServer = LeanServer(gw, "127.0.0.1", gw_port) if asgi_only else GatewayServer(gw, "127.0.0.1", gw_port)
    loop = asyncio.new_event_loop()

    async def main() -> None:
        server = await asyncio.start_server(up.handle, "127.0.0.1", up.port)
        async with server:
            await srv.serve()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", gw_port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield Running(f"http://127.0.0.1:{gw_port}", gw_port, gw, up, loop, spool, srv)
    finally:
        loop.call_soon_threadsafe(srv.stop)
        thread.join(timeout=15)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Running]:
    with running(tmp_path, read_timeout_s=1.0, max_request_bytes=2 << 20) as r:
        yield r


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        + b"".join(h + b"\r\n" for h in extra)
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response from a raw socket (Content-Length or chunked); ``buf`` keeps what follows it."""

    def fill() -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf.extend(data)

    while b"\r\n\r\n" not in buf:
        fill()
    i = buf.index(b"\r\n\r\n")
    head = bytes(buf[:i]).split(b"\r\n")
    del buf[: i + 4]
    status = int(head[0].split(b" ")[1])
    headers: dict[bytes, bytes] = {}
    for line in head[1:]:
        k, v = line.split(b":", 1)
        assert k.lower() not in headers, f"header {k!r} twice"
        headers[k.lower()] = v.strip()
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(buf) < n:
            fill()
        body = bytes(buf[:n])
        del buf[:n]
        return status, headers, body
    if headers.get(b"transfer-encoding") != b"chunked":
        return status, headers, b""
    body = b""
    while True:
        while b"\r\n" not in buf:
            fill()
        j = buf.index(b"\r\n")
        size = int(bytes(buf[:j]), 16)
        while len(buf) < j + 2 + size + 2:
            fill()
        body += bytes(buf[j + 2 : j + 2 + size])
        del buf[: j + 2 + size + 2]
        if size == 0:
            return status, headers, body


def connect(r: Running) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not cond():  # type: ignore[operator]
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.02)


BIG = 32 << 20
REQUEST = b'{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}'


def test_keep_alive_reuses_one_upstream_connection_and_records_every_call(gw: Running) -> None:
    with connect(gw) as s:
        buf = bytearray()
        for _ in range(20):
            s.sendall(post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-1"))
            status, headers, body = read_response(s, buf)
            assert (status, body) == (200, CHAT)
            assert headers[b"x-request-id"] == b"r1"
            assert float(headers[b"x-energy-wh"]) > 0
            assert b"connection" not in headers
    assert gw.upstream.connections == 1  # one kept-alive upstream connection for the 20 calls
    assert isinstance(gw.server, GatewayServer)
    assert gw.server.pool.connects == 1  # opened by the fast path's pool (not the ASGI path's client)
    wait_for(lambda: gw.gw.recorded == 20)  # (the gateway's thread records just after the last answer)
    wait_for(lambda: gw.spool.total == 20)  # appended after the answers
    sent = gw.upstream.requests[-1]
    assert dict(sent["headers"])[b"authorization"] == b"Bearer sk-1"  # type: ignore[call-overload]


def test_each_call_on_a_connection_is_forwarded_with_its_own_head(gw: Running) -> None:
    """The fast path reuses the previous call's routing when a connection sends the same request head
    again, and the previous answer's head when the upstream sends the same one; any change of path,
    query, method or header is routed anew, and each answer keeps its own headers (nothing of a
    previous call leaks into the next one)."""
    calls: list[tuple[bytes, bytes]] = [
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-1"), b"sk-1"),
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-1"), b"sk-1"),
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-2"), b"sk-2"),
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-2", b"x-powermeter-tag: t1"), b"sk-2"),
        (post("/openai/v1/echo?x=1", b"abc", b"authorization: Bearer sk-2"), b"sk-2"),
        (post("/openai/v1/echo?x=2", b"abcd", b"authorization: Bearer sk-2"), b"sk-2"),
        (b"GET /openai/v1/echo?x=2 HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-2\r\n\r\n", b"sk-2"),
        (post("/openai/v1/echo?x=2", b"", b"authorization: Bearer sk-2"), b"sk-2"),
        (post("/nope/v1/chat/completions", REQUEST, b"authorization: Bearer sk-2"), b""),
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-1"), b"sk-1"),
        (post("/openai/v1/chat/completions", REQUEST, b"authorization: Bearer sk-1"), b"sk-1"),
    ]
    answers = []
    with connect(gw) as s:
        buf = bytearray()
        for raw, _ in calls:
            s.sendall(raw)
            answers.append(read_response(s, buf))
    # each answer with its own head, though they come on one kept-alive upstream connection
    assert gw.upstream.connections == 1
    for (status, headers, body), (raw, _) in zip(answers, calls, strict=True):
        assert headers[b"content-length"] == str(len(body)).encode()
        if b"/nope/" in raw:
            assert status == 404
            continue
        assert status == 200
        if b"/chat/completions" in raw:
            assert body == CHAT
            assert headers[b"x-request-id"] == b"r1"
            assert float(headers[b"x-energy-wh"]) > 0
        else:
            assert orjson.loads(body)["target"] == raw.split(b" ")[1].decode().removeprefix("/openai")
            assert b"x-request-id" not in headers
            assert b"x-energy-wh" not in headers
    forwarded = [c for c in calls if c[1]]
    assert len(gw.upstream.requests) == len(forwarded)
    n = str(len(REQUEST)).encode()
    expected = [
        (b"POST", b"/v1/chat/completions", n, REQUEST),
        (b"POST", b"/v1/chat/completions", n, REQUEST),
        (b"POST", b"/v1/chat/completions", n, REQUEST),
        (b"POST", b"/v1/chat/completions", n, REQUEST),
        (b"POST", b"/v1/echo?x=1", b"3", b"abc"),
        (b"POST", b"/v1/echo?x=2", b"4", b"abcd"),
        (b"GET", b"/v1/echo?x=2", None, b""),  # no body: no Content-Length
        (b"POST", b"/v1/echo?x=2", b"0", b""),
        (b"POST", b"/v1/chat/completions", n, REQUEST),
        (b"POST", b"/v1/chat/completions", n, REQUEST),
    ]
    for (_, key), req, (method, target, length, body) in zip(forwarded, gw.upstream.requests, expected, strict=True):
        headers = dict(req["headers"])  # type: ignore[call-overload]
        assert (req["method"], req["target"], req["body"]) == (method, target, body)
        assert headers[b"authorization"] == b"Bearer " + key
        assert b"x-powermeter-tag" not in headers
        assert headers.get(b"content-length") == length
    wait_for(lambda: gw.spool.total == 6)
    gw.loop.call_soon_threadsafe(gw.spool.seal)
    wait_for(lambda: bool(gw.spool.sealed))
    records = [r for p in gw.spool.sealed for r in Spool.read(p)]
    assert [r.get("tag") for r in records] == [None, None, None, "t1", None, None]
    assert len({r["idempotency_key"] for r in records}) == 6


def test_pipelined_requests_are_answered_in_order(gw: Running) -> None:
    with connect(gw) as s:
        s.sendall(
            post("/openai/v1/chat/completions", REQUEST)
            + post("/openai/v1/echo?x=1", b"abc")
            + b"GET /.well-known/powermeter-gateway HTTP/1.1\r\nhost: gw\r\n\r\n"
            + post("/nope/v1/chat/completions", b"{}")
            + post("/openai/v1/chat/completions", REQUEST)
        )
        buf = bytearray()
        answers = [read_response(s, buf) for _ in range(5)]
    assert [a[0] for a in answers] == [200, 200, 200, 404, 200]
    assert answers[0][2] == answers[4][2] == CHAT
    echo = orjson.loads(answers[1][2])
    assert (echo["target"], echo["length"]) == ("/v1/echo?x=1", 3)
    assert "upstreams" in orjson.loads(answers[2][2])
    assert orjson.loads(answers[3][2])["error"]["code"] == "unknown_upstream"


def test_a_request_pipelined_behind_a_call_in_flight_is_read_to_its_end(gw: Running) -> None:
    with connect(gw) as s:
        s.sendall(
            post("/openai/v1/slow/chat/completions", REQUEST)
            + b"POST /openai/v1/echo HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        time.sleep(0.6)  # the first call has been answered meanwhile; the second's body has not come yet
        s.sendall(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
        buf = bytearray()
        assert read_response(s, buf)[2] == CHAT
        echo = orjson.loads(read_response(s, buf)[2])
        assert echo["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/openai/v1/echo", 600_000),  # fast path (≤ 1 MiB, read whole)
        ("/openai/v1/echo", 3_000_000),  # unmetered and larger: streamed to the upstream
    ],
)
def test_large_request_bodies_arrive_whole(gw: Running, path: str, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    r = httpx.post(gw.base + path, content=body, timeout=30)
    assert r.status_code == 200
    got = r.json()
    assert (got["length"], got["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_chunked_request_bodies_are_forwarded(gw: Running) -> None:
    def parts() -> Iterator[bytes]:
        yield b'{"model":"gpt-4o",'
        yield b'"messages":[]}'

    r = httpx.post(gw.base + "/openai/v1/echo", content=parts(), timeout=10)
    assert r.status_code == 200
    assert r.json()["sha256"] == hashlib.sha256(b'{"model":"gpt-4o","messages":[]}').hexdigest()
    # a metered call with a chunked body: read whole (for include_usage), sent with its length, recorded
    r = httpx.post(gw.base + "/openai/v1/chat/completions", content=parts(), timeout=10)
    assert (r.status_code, r.content) == (200, CHAT)
    sent = gw.upstream.requests[-1]
    assert dict(sent["headers"])[b"content-length"] == b"32"  # type: ignore[call-overload]
    wait_for(lambda: gw.gw.recorded == 1)


def test_stream_passes_chunk_by_chunk_and_a_caller_leaving_mid_stream_ends_the_upstream_call(gw: Running) -> None:
    # a whole stream first: every event, in order, and the usage recorded
    r = httpx.post(gw.base + "/openai/v1/chat/completions", content=b'{"model":"gpt-4o","stream":true}')
    assert r.content == b"".join(SSE)
    assert b'"include_usage":true' in gw.upstream.requests[-1]["body"]  # type: ignore[operator]
    wait_for(lambda: gw.gw.recorded == 1)

    gw.upstream.stream_closed = asyncio.Event()
    with connect(gw) as s:
        s.sendall(post("/openai/v1/sse/hold/chat/completions", b'{"model":"gpt-4o","stream":true}'))
        got = b""
        while SSE[0] not in got:  # the first event arrives before the upstream sends the rest
            got += s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    wait_for(lambda: gw.upstream.stream_closed is not None and gw.upstream.stream_closed.is_set())
    wait_for(lambda: gw.gw.unmetered == 1)
    assert gw.gw.recorded == 1  # the abandoned stream is not recorded


def test_an_upstream_closing_its_kept_alive_connection(gw: Running) -> None:
    for _ in range(3):  # it closes after each answer: the next call opens a new connection
        r = httpx.post(gw.base + "/openai/v1/close-after/chat/completions", content=REQUEST)
        assert (r.status_code, r.content) == (200, CHAT)
        time.sleep(0.05)
    assert gw.upstream.connections == 3
    # it closes a kept-alive connection as a request arrives: a GET is sent again on a new connection,
    # a POST (not replayable) gets 502
    assert httpx.get(gw.base + "/openai/v1/models").status_code == 200
    before = gw.upstream.connections
    assert httpx.get(gw.base + "/openai/v1/drop").status_code == 502  # dropped twice: once retried, then 502
    assert gw.upstream.connections == before + 1
    assert httpx.get(gw.base + "/openai/v1/models").status_code == 200
    r = httpx.post(gw.base + "/openai/v1/drop", content=b"{}")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"


def test_upstream_timeouts_errors_and_no_content_pass_through(gw: Running) -> None:
    t0 = time.monotonic()
    r = httpx.post(gw.base + "/openai/v1/hang/chat/completions", content=REQUEST, timeout=10)
    assert r.status_code == 504  # read_timeout_s=1
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 4
    r = httpx.post(gw.base + "/openai/v1/error/chat/completions", content=REQUEST)
    assert (r.status_code, r.content) == (500, b'{"error":{"message":"the fake failed"}}')
    r = httpx.post(gw.base + "/openai/v1/nocontent", content=b"")
    assert (r.status_code, r.content, r.headers["x-upstream"]) == (204, b"", "1")
    assert gw.gw.recorded == 0


def test_inputs_are_bounded_with_clear_errors(tmp_path: Path) -> None:
    with running(tmp_path, max_request_bytes=1000) as r:
        with connect(r) as s:
            s.sendall(b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-big: " + b"a" * (MAX_HEAD + 10))
            s.sendall(b"\r\n\r\n")  # a whole head above MAX_HEAD
            status, _, body = read_response(s, bytearray())
            assert (status, body) == (431, b"request header fields too large")
        with connect(r) as s:  # a head that never ends
            s.sendall(b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(40):
                    s.sendall(b"x-a: " + b"a" * 16_000)
            status, _, body = read_response(s, bytearray())
            assert (status, body) == (431, b"request header fields too large")
        big = b'{"model":"gpt-4o","pad":"' + b"x" * 2000 + b'"}'
        resp = httpx.post(r.base + "/openai/v1/chat/completions", content=big)
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "request_too_large"
        assert httpx.post(r.base + "/openai/v1/chat/completions", content=REQUEST).status_code == 200


def exchange(port: int, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        return read_response(s, bytearray())


def test_the_fast_path_answers_the_same_bytes_as_the_asgi_path(tmp_path: Path) -> None:
    cases = [
        post("/openai/v1/chat/completions?api-version=2", REQUEST, b"accept-encoding: br, gzip"),
        post("/openai/v1/chat/completions", b'{"model":"gpt-4o","stream":true}'),
        post("/openai/v1/error/chat/completions", REQUEST),
        post("/openai/v1/echo", b"hello", b"x-powermeter-tag: t1", b"connection: keep-alive", b"te: trailers"),
        post("/openai/v1/nocontent", b""),
        post("/openai/v1/chat/completions", REQUEST, b"x-powermeter-tag: \x01bad"),
        b"GET /nope/x HTTP/1.1\r\nhost: gw\r\n\r\n",
    ]
    answers = []
    for asgi_only in (True, False):
        with running(tmp_path / str(asgi_only), asgi_only=asgi_only) as r:
            answers.append([exchange(r.port, raw) for raw in cases])
            answers[-1] = [(st, h, b.replace(str(r.upstream.port).encode(), b"PORT")) for st, h, b in answers[-1]]
            answers[-1].append((len(r.upstream.requests), {}, b"".join(rq["body"] for rq in r.upstream.requests)))  # type: ignore[misc]
    for asgi, fast in zip(*answers, strict=True):
        assert asgi[0] == fast[0]
        assert asgi[2] == fast[2]  # byte for byte (the echo includes the headers the upstream received)
        assert {k: v for k, v in asgi[1].items() if k not in (b"x-energy-wh", b"x-co2-grams")} == {
            k: v for k, v in fast[1].items() if k not in (b"x-energy-wh", b"x-co2-grams")
        }
        assert (b"x-energy-wh" in asgi[1]) == (b"x-energy-wh" in fast[1])


def test_a_slow_reader_holds_the_upstream_back(gw: Running) -> None:
    with connect(gw) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(b"GET /openai/v1/big HTTP/1.1\r\nhost: gw\r\n\r\n")
        time.sleep(1.0)  # the caller does not read: the gateway must stop reading from the upstream
        assert gw.upstream.big_sent < BIG // 2, gw.upstream.big_sent
        buf = bytearray()
        status, _, body = read_response(s, buf)
        assert (status, len(body), gw.upstream.big_sent) == (200, BIG, BIG)
        # the same connections serve the next call (the upstream one was resumed before its reuse)
        s.sendall(post("/openai/v1/chat/completions", REQUEST))
        assert read_response(s, buf)[2] == CHAT
    assert gw.upstream.connections == 1
