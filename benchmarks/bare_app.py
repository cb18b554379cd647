"""The baseline every HTTP benchmark compares against: a bare FastAPI route returning a constant.

``/ping`` and ``/echo`` are ``async def`` (the fastest plain FastAPI route: no thread-pool hop); the
``/sync/*`` routes are the same as plain ``def`` (run in FastAPI's thread pool, about half the
throughput). Figures before issue 19 were measured against the sync routes.
"""

from __future__ import annotations

from typing import Any

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
