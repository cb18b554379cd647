"""Whole (non-streamed) answers through the gateway served by its lean HTTP server, against a small real
upstream on loopback: small answers get X-Energy-Wh, answers larger than ``max_buffered_bytes`` (with a
Content-Length or chunked) are streamed through byte for byte and their usage still read."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from powermeter.gateway.app import Gateway, GatewayConfig, make_upstream
from powermeter.proxy.server import LeanServer
from tests.integration.routing.conftest import free_port


def answer(filler: int) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * filler}}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 300, "total_tokens": 800},
        }
    )


async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
            await reader.readexactly(length)
            path = head.split(b" ")[1]
            body = answer(int(path.split(b"/")[2].split(b"-")[1]))  # /v1/len-10/chat/completions
            if b"/chunked-" in path:  # no Content-Length: two chunks
                half = len(body) // 2
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
                )
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, Gateway]]:
    up_port, gw_port = free_port(), free_port()
    gw = Gateway(
        GatewayConfig(upstreams=(make_upstream("openai", f"http://127.0.0.1:{up_port}"),), max_buffered_bytes=2000),
        None,
    )
    srv = LeanServer(gw, "127.0.0.1", gw_port)

    async def main() -> None:
        up = await asyncio.start_server(upstream, "127.0.0.1", up_port)
        async with up:
            await srv.serve()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", gw_port), timeout=0.1).close()
            break
        except OSError:
            threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{gw_port}", gw
    loop.call_soon_threadsafe(srv.stop)
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("path", "filler", "footprint"),
    [
        ("/openai/v1/len-10/chat/completions", 10, True),
        ("/openai/v1/chunked-10/chat/completions", 10, True),
        ("/openai/v1/len-5000/chat/completions", 5000, False),  # above max_buffered_bytes: streamed
        ("/openai/v1/chunked-5000/chat/completions", 5000, False),
    ],
)
def test_whole_answers_small_and_large(gateway: tuple[str, Gateway], path: str, filler: int, footprint: bool) -> None:
    base, gw = gateway
    before = (gw.calls, gw.unmetered)
    r = httpx.post(base + path, json={"model": "gpt-4o", "messages": []}, timeout=10)
    assert r.status_code == 200
    assert r.content == answer(filler)  # byte for byte
    assert ("x-energy-wh" in r.headers) == footprint
    if footprint:
        assert float(r.headers["x-energy-wh"]) > 0
        assert r.headers.get_list("content-length") == [str(len(answer(filler)))]
    assert (gw.calls, gw.unmetered) == (before[0] + 1, before[1])  # the usage was read every time
