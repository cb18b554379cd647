"""The proxy's lean HTTP/1.1 upstream client against small real servers on loopback."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from powermeter.proxy.upstream import LeanClient, UpstreamError


async def serve(handler: object) -> tuple[asyncio.AbstractServer, httpx.URL]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    return server, httpx.URL(f"http://127.0.0.1:{port}")


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


def test_keep_alive_reuse_and_a_stale_connection_is_retried_on_a_new_one() -> None:
    seen: list[tuple[int, bytes]] = []
    conns = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        me = conns
        served = 0
        try:
            while True:
                _, body = await read_request(reader)
                if me == 1 and served == 2:
                    writer.close()  # the upstream dropped the idle connection just as the request came in
                    return
                served += 1
                seen.append((me, body))
                payload = b"conn %d req %d" % (me, served)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def go() -> list[bytes]:
        server, origin = await serve(handler)
        client = LeanClient()
        out = []
        try:
            for i in range(4):
                resp = await client.request(origin, "PUT", b"/x", [], b"body%d" % i, None)
                out.append(await resp.read())
                await resp.aclose()
        finally:
            await client.aclose()
            server.close()
        return out

    bodies = asyncio.run(go())
    assert bodies == [b"conn 1 req 1", b"conn 1 req 2", b"conn 2 req 1", b"conn 2 req 2"]
    assert [b for _, b in seen] == [b"body0", b"body1", b"body2", b"body3"]  # nothing lost, nothing doubled


def test_a_post_on_a_stale_connection_is_not_replayed() -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        try:
            await read_request(reader)
            requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await read_request(reader)
            requests += 1
            writer.close()  # processed (maybe), then gone without an answer
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def go() -> None:
        server, origin = await serve(handler)
        client = LeanClient()
        try:
            resp = await client.request(origin, "POST", b"/x", [], b"a", None)
            await resp.read()
            await resp.aclose()
            with pytest.raises(UpstreamError):
                await client.request(origin, "POST", b"/x", [], b"b", None)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(go())
    assert requests == 2  # the second POST reached the upstream once, and was not sent again


def test_chunked_response_streams_and_connection_errors_are_upstream_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(3):
            writer.write(b"5\r\nchunk\r\n")
            await writer.drain()
            await asyncio.sleep(0.01 * i)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def go() -> tuple[int, list[bytes], int | None]:
        server, origin = await serve(handler)
        client = LeanClient()
        resp = await client.request(origin, "GET", b"/s?q=1", [(b"x-test", b"1")], b"", None)
        parts = [p async for p in resp.aiter()]
        await resp.aclose()
        await client.aclose()
        server.close()
        return resp.status, parts, resp.content_length

    status, parts, length = asyncio.run(go())
    assert status == 200
    assert b"".join(parts) == b"chunk" * 3
    assert length is None

    async def refused() -> None:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        await LeanClient(connect_timeout_s=1).request(httpx.URL(f"http://127.0.0.1:{port}"), "GET", b"/", [], b"", None)

    with pytest.raises(UpstreamError, match="cannot connect"):
        asyncio.run(refused())


def test_streamed_request_body_without_length_is_sent_chunked() -> None:
    got: dict[str, bytes] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        got["head"] = head
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
        got["body"] = body
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def chunks() -> object:
        for c in (b"ab", b"", b"cde"):
            yield c

    async def go() -> int:
        server, origin = await serve(handler)
        client = LeanClient()
        resp = await client.request(origin, "POST", b"/up", [], None, chunks())  # type: ignore[arg-type]
        status = resp.status
        await resp.read()
        await resp.aclose()
        await client.aclose()
        server.close()
        return status

    assert asyncio.run(go()) == 204
    assert b"transfer-encoding: chunked" in got["head"]
    assert got["body"] == b"abcde"


def test_read_timeout_fires_for_the_silent_request_only() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, _ = await read_request(reader)
            if b" /hang " in head:
                await asyncio.sleep(5)  # no answer within the client's read timeout
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def go() -> tuple[float, list[object]]:
        server, origin = await serve(handler)
        client = LeanClient(read_timeout_s=0.4)

        async def call(path: bytes) -> object:
            try:
                resp = await client.request(origin, "GET", path, [], b"", None)
            except UpstreamError as exc:
                return exc
            try:
                return await resp.read()
            finally:
                await resp.aclose()

        t0 = asyncio.get_running_loop().time()
        out = await asyncio.gather(call(b"/hang"), call(b"/fast"), call(b"/fast"))
        elapsed = asyncio.get_running_loop().time() - t0
        assert not client._waiting  # nothing left to watch
        await client.aclose()
        server.close()
        return elapsed, out

    elapsed, (hung, fast1, fast2) = asyncio.run(go())
    assert isinstance(hung, UpstreamError)
    assert "no response within 0.4 s" in str(hung)
    assert isinstance(hung.__cause__, TimeoutError)
    assert (fast1, fast2) == (b"ok", b"ok")
    assert 0.4 <= elapsed < 1.5  # the deadline, plus at most one sweep period (0.05 s here) and scheduling
