"""A minimal fake LLM provider for ``bench_gateway.py`` (raw ASGI, served by uvicorn).

``POST /v1/chat/completions`` answers a fixed chat completion (or, for ``"stream": true``, seven SSE
chunks including the usage chunk); ``POST /v1/inference/batch`` stands in for the powermeter server
(it acknowledges every record as created), so the benchmark measures the gateway alone.
"""

from __future__ import annotations

from typing import Any

import orjson

CHAT = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1710000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 500, "completion_tokens": 300, "total_tokens": 800},
    }
)
_BASE = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1710000000, "model": "gpt-4o"}
CHUNKS = [
    b"data: " + orjson.dumps({**_BASE, "choices": [{"index": 0, "delta": {"content": w}}], "usage": None}) + b"\n\n"
    for w in ("", "Hel", "lo", " there", "!")
] + [
    b"data: "
    + orjson.dumps(
        {**_BASE, "choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 45, "total_tokens": 165}}
    )
    + b"\n\n",
    b"data: [DONE]\n\n",
]
JSON_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    path = scope["path"]
    if path.endswith("/inference/batch"):
        n = len(orjson.loads(body)["records"])
        out = orjson.dumps({"status": "success", "created": n, "duplicates": 0, "rejected": 0, "data": []})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})
    elif path.endswith("/chat/completions") and b'"stream":true' in body:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for c in CHUNKS:
            await send({"type": "http.response.body", "body": c, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(CHAT)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": CHAT})
