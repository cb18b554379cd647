"""A tiny upstream for the proxy tests: ``python upstream_app.py NAME PORT``.

GET any path → ``{"upstream": NAME, "path": ...}``; POST/PUT ``/echo`` → size and SHA-256 of the body it
received; GET ``/stream?chunks=N&size=S`` → N chunks of S bytes without Content-Length;
``/only-on/X`` → 503 unless NAME is X; ``/healthz`` → 200.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any
from urllib.parse import parse_qs

NAME = sys.argv[1] if len(sys.argv) > 1 else "upstream"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    method: str = scope["method"]
    query = parse_qs(scope.get("query_string", b"").decode())

    async def reply(status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    if path.startswith("/only-on/") and path.split("/")[-1] != NAME:
        await reply(503, {"upstream": NAME, "error": "not me"})
        return
    if path == "/echo":
        h = hashlib.sha256()
        n = 0
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            h.update(chunk)
            n += len(chunk)
            if not msg.get("more_body", False):
                break
        await reply(200, {"upstream": NAME, "method": method, "bytes": n, "sha256": h.hexdigest()})
        return
    if path == "/stream":
        chunks = int(query.get("chunks", ["10"])[0])
        size = int(query.get("size", ["1024"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-upstream", NAME.encode())]})
        for i in range(chunks):
            await send({"type": "http.response.body", "body": bytes([i % 256]) * size, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await reply(
        200,
        {
            "upstream": NAME,
            "path": path,
            "method": method,
            "forwarded_for": dict(scope["headers"]).get(b"x-forwarded-for", b"").decode(),
        },
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
