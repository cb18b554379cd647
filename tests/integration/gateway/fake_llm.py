"""A fake LLM provider (OpenAI-compatible and Anthropic routes) served by uvicorn on a loopback port,
in a thread of the test process. Tests steer it with request headers (the gateway forwards them):

- ``x-fake-status: 500`` answers with that status and an OpenAI-style error body;
- ``x-fake-hang: 1`` never answers (until the server stops);
- ``x-fake-first-delay-ms: N`` waits N ms before the first content chunk of a stream;
- ``x-fake-hold-last: 1`` holds the last chunk of a stream until ``FakeLLM.release`` is set.

Every request it receives is kept in ``FakeLLM.requests`` (method, path, query, headers, body).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn

from tests.live import free_port

CHAT_BODY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1710000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 500, "completion_tokens": 300, "total_tokens": 800},
    },
    option=orjson.OPT_INDENT_2,
)


def chat_chunks(with_usage: bool) -> list[bytes]:
    def ev(obj: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1710000000, "model": "gpt-4o"}
    usage_null = {"usage": None} if with_usage else {}
    out = [ev({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], **usage_null})]
    for word in ("Hel", "lo", " there", "!"):
        out.append(ev({**base, "choices": [{"index": 0, "delta": {"content": word}}], **usage_null}))
    out.append(ev({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **usage_null}))
    if with_usage:
        out.append(
            ev(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 120,
                        "completion_tokens": 45,
                        "total_tokens": 165,
                        "prompt_tokens_details": {"cached_tokens": 64},
                        "completion_tokens_details": {"reasoning_tokens": 10},
                    },
                }
            )
        )
    out.append(b"data: [DONE]\n\n")
    return out


def anthropic_chunks() -> list[bytes]:
    def ev(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    return [
        ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [],
                    "stop_reason": None,
                    "usage": {
                        "input_tokens": 100,
                        "cache_creation_input_tokens": 20,
                        "cache_read_input_tokens": 2000,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ev("ping", {"type": "ping"}),
        ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour"}},
        ),
        ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " !"}},
        ),
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 250}},
        ),
        ev("message_stop", {"type": "message_stop"}),
    ]


def responses_chunks() -> list[bytes]:
    def ev(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    resp = {"id": "resp_1", "object": "response", "model": "gpt-4o-mini", "status": "in_progress", "usage": None}
    done = {
        **resp,
        "status": "completed",
        "usage": {
            "input_tokens": 40,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 70,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 110,
        },
    }
    return [
        ev("response.created", {"type": "response.created", "response": resp}),
        ev("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi"}),
        ev("response.completed", {"type": "response.completed", "response": done}),
    ]


@dataclass
class FakeLLM:
    base: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    last_stream: list[bytes] = field(default_factory=list)
    released_by_client: bool | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "headers": headers,
                "body": body,
            }
        )
        if headers.get("x-fake-hang"):
            await asyncio.sleep(3600)
        status = int(headers.get("x-fake-status", "200"))
        if status != 200:
            err = orjson.dumps({"error": {"message": "the fake failed", "type": "server_error", "code": None}})
            await self._whole(send, status, err)
            return
        req = orjson.loads(body) if body.startswith(b"{") else {}
        path = scope["path"]
        stream = bool(req.get("stream"))
        if path.endswith("/chat/completions"):
            if not stream:
                await self._whole(send, 200, CHAT_BODY)
                return
            with_usage = bool((req.get("stream_options") or {}).get("include_usage"))
            await self._stream(send, chat_chunks(with_usage), headers)
        elif path.endswith("/messages"):
            await self._stream(send, anthropic_chunks(), headers)
        elif path.endswith("/responses"):
            await self._stream(send, responses_chunks(), headers)
        elif path.endswith("/embeddings"):
            await self._whole(
                send,
                200,
                orjson.dumps(
                    {
                        "object": "list",
                        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                        "model": "text-embedding-3-small",
                        "usage": {"prompt_tokens": 8, "total_tokens": 8},
                    }
                ),
            )
        else:
            await self._whole(send, 200, orjson.dumps({"object": "list", "data": [], "path": path}))

    async def _whole(self, send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", b"req_fake_1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Any, chunks: list[bytes], headers: dict[str, str]) -> None:
        self.last_stream = chunks
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")],
            }
        )
        first_delay = int(headers.get("x-fake-first-delay-ms", "0")) / 1000
        hold = bool(headers.get("x-fake-hold-last"))
        # the first event (role / message_start / response.created) goes at once, the first token after the delay
        for i, c in enumerate(chunks):
            if i == 1 and first_delay:
                await asyncio.sleep(first_delay)
            if hold and i == len(chunks) - 1:
                deadline = time.monotonic() + 10
                while not self.release.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                self.released_by_client = self.release.is_set()
            await send({"type": "http.response.body", "body": c, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@contextlib.contextmanager
def run_fake() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake, host="127.0.0.1", port=port, log_level="error", lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("fake upstream did not start")
        time.sleep(0.01)
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(5)
