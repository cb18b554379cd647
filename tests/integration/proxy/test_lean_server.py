"""The gateway's lean HTTP/1.1 server (powermeter.proxy.server), over real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from powermeter.proxy.server import LeanServer
from tests.integration.routing.conftest import free_port

EVENTS: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            EVENTS.append(msg["type"])
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/wait-for-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        msg = await receive()
        EVENTS.append(msg["type"])
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/boom":
        raise RuntimeError("boom")
    out = b"%s %s?%s %d:%s" % (scope["method"].encode(), scope["raw_path"], scope["query_string"], len(body), body)
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(out)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    srv = LeanServer(app, "127.0.0.1", port)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(srv.serve(),), daemon=True)
    thread.start()
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            threading.Event().wait(0.05)
    yield port
    loop.call_soon_threadsafe(srv.stop)
    thread.join(timeout=10)
    assert "lifespan.shutdown" in EVENTS


def raw(port: int, data: bytes, until: bytes, expect_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        got = b""
        while until not in got or expect_close:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_keep_alive_bodies_and_streams(server: int) -> None:
    assert EVENTS[0] == "lifespan.startup"
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as c:
        r = c.post("/echo/a%20b?x=1", content=b"hello")
        assert (r.status_code, r.text) == (201, "POST /echo/a%20b?x=1 5:hello")
        r = c.post("/echo/plain", content=b"again")  # the same connection, its next request
        assert r.text == "POST /echo/plain? 5:again"
        r = c.post("/echo", content=iter([b"chunk", b"ed"]))  # chunked request body
        assert r.text == "POST /echo? 7:chunked"
        r = c.get("/stream")
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.text == "one two three"
        r = c.head("/echo")
        assert (r.status_code, r.content) == (201, b"")
        r = c.get("/boom")
        assert r.status_code == 500


def test_the_applications_content_length_is_sent_once(server: int) -> None:
    got = raw(server, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi", b"2:hi")
    head = got.split(b"\r\n\r\n")[0].lower()
    assert head.count(b"content-length:") == 1, got
    assert b"content-length: 16\r\n" in head + b"\r\n"


def test_pipelined_requests_are_answered_in_order_and_expect_continue(server: int) -> None:
    got = raw(
        server,
        b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"GET /2?",
        expect_close=True,
    )
    assert got.index(b"GET /1? 0:") < got.index(b"GET /2? 0:")
    assert got.endswith(b"GET /2? 0:")
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"abc")
        data = b""
        while b"3:abc" not in data:
            data += s.recv(1000)


def test_http_1_0_gets_a_close_delimited_stream(server: int) -> None:
    got = raw(server, b"GET /stream HTTP/1.0\r\n\r\n", b"three", expect_close=True)
    assert b"transfer-encoding" not in got.lower()
    assert got.endswith(b"\r\n\r\none two three")


def test_a_caller_that_leaves_is_seen_as_http_disconnect(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"GET /wait-for-disconnect HTTP/1.1\r\nhost: x\r\n\r\n")
        assert b"started" in s.recv(1000)
    for _ in range(100):
        if "http.disconnect" in EVENTS:
            break
        threading.Event().wait(0.05)
    assert "http.disconnect" in EVENTS


def test_malformed_requests_get_400(server: int) -> None:
    got = raw(server, b"NOT HTTP\r\n\r\n", b"400", expect_close=True)
    assert got.startswith(b"HTTP/1.1 400 ")
