"""The baseline every HTTP benchmark compares against: a bare FastAPI route returning a constant.

``/ping`` and ``/echo`` are ``async def`` (the fastest plain FastAPI route: no thread-pool hop); the
``/sync/*`` routes are the same as plain ``def`` (run in FastAPI's thread pool, about half the
throughput). Figures before issue 19 were measured against the sync routes.

``raw_app`` is the floor under every web framework: a plain ASGI callable that reads the body, parses it
with orjson and answers the same JSON, with no routing, validation or middleware. powermeter's compiled
routes (``infra/fastpath.py``) skip most of FastAPI's per-request machinery, so the benchmarks print their
ratio to this floor as well: a route doing real work cannot beat it, and how close it gets is the honest
measure of what the framework still costs.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, Any]:
    return {"status": "success", "data": {"pong": True}}


@app.post("/echo")
async def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"n": len(body)}}


@app.get("/sync/ping")
def sync_ping() -> dict[str, Any]:
    return {"status": "success", "data": {"pong": True}}


@app.post("/sync/echo")
def sync_echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"n": len(body)}}


_PONG = orjson.dumps({"status": "success", "data": {"pong": True}})


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /ping`` and ``POST /echo`` as a bare ASGI callable (anything else: the same answers)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    if scope["method"] == "POST":
        more = True
        chunks = []
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        doc = orjson.loads(b"".join(chunks))
        out = orjson.dumps({"status": "success", "data": {"n": len(doc)}})
    else:
        out = _PONG
    body = out
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
