"""The baseline every HTTP benchmark compares against: a bare FastAPI route returning a constant."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
def ping() -> dict[str, Any]:
    return {"status": "success", "data": {"pong": True}}


@app.post("/echo")
def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"n": len(body)}}
