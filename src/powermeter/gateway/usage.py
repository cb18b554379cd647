"""Reading the model and token usage out of LLM API answers, whole or streamed (SSE).

Field names (docs/methodology.md, section "AI gateway", sources):

- OpenAI Chat Completions / Completions / Embeddings: ``usage.prompt_tokens``, ``usage.completion_tokens``,
  ``usage.prompt_tokens_details.cached_tokens`` (a subset of the prompt tokens),
  ``usage.completion_tokens_details.reasoning_tokens`` (a subset of the completion tokens). Streaming: the
  chunk before ``data: [DONE]`` carries the totals when the request set ``stream_options.include_usage``;
  earlier chunks have ``"usage": null``.
- OpenAI Responses: ``usage.input_tokens``, ``usage.output_tokens``, ``input_tokens_details.cached_tokens``,
  ``output_tokens_details.reasoning_tokens``; streamed in the terminal ``response.completed`` /
  ``response.incomplete`` / ``response.failed`` event's ``response`` object.
- Anthropic Messages: ``usage.input_tokens`` (excluding cache reads and writes), ``output_tokens``,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens``; streamed in ``message_start`` (message.usage)
  and ``message_delta`` (usage, cumulative: a later value replaces an earlier one).

Anthropic's prompt is ``input + cache_read + cache_creation`` tokens, of which ``cache_read`` were read from
the cache, so the record gets ``prompt_tokens = input + cache_read + cache_creation`` and
``cached_tokens = cache_read``, the same meaning as OpenAI's fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

# Route kinds by the end of the request path (after the upstream name): OpenAI-compatible and Anthropic.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/messages", "messages"),
)


def route_kind(path: str) -> str | None:
    """The metered route ``path`` ends with (``chat``, ``completions``, ``responses``, ``embeddings``,
    ``messages``), or ``None`` for anything else (forwarded, not metered)."""
    p = path.rstrip("/")
    for suffix, kind in ROUTES:
        if p.endswith(suffix):
            return kind
    return None


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


@dataclass(slots=True)
class Usage:
    """Exact token counts of one answer, in ``POST /v1/inference``'s terms."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0  # Anthropic cache writes (already inside prompt_tokens)


def parse_usage(u: Any) -> Usage | None:
    """Any of the three usage shapes (OpenAI, Responses, Anthropic) → :class:`Usage`; ``None`` if absent."""
    if type(u) is not dict and not isinstance(u, dict):  # (orjson gives plain dicts: one check)
        return None
    if "prompt_tokens" in u or "completion_tokens" in u:  # OpenAI chat / completions / embeddings
        ptd = u.get("prompt_tokens_details")
        ctd = u.get("completion_tokens_details")
        p, c = u.get("prompt_tokens"), u.get("completion_tokens")
        return Usage(
            p if type(p) is int and p >= 0 else _int(p),  # (the common case without a call)
            c if type(c) is int and c >= 0 else _int(c),
            _int(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else 0,
            _int(ptd.get("cached_tokens")) if isinstance(ptd, dict) else 0,
        )
    if "input_tokens" in u or "output_tokens" in u:
        cache_read = _int(u.get("cache_read_input_tokens"))
        cache_write = _int(u.get("cache_creation_input_tokens"))
        if cache_read or cache_write or "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:
            # Anthropic: input_tokens excludes cache reads and writes
            return Usage(
                prompt_tokens=_int(u.get("input_tokens")) + cache_read + cache_write,
                completion_tokens=_int(u.get("output_tokens")),
                cached_tokens=cache_read,
                cache_creation_tokens=cache_write,
            )
        itd = u.get("input_tokens_details")
        otd = u.get("output_tokens_details")
        return Usage(  # Responses API (and Anthropic without cache fields: same meaning)
            prompt_tokens=_int(u.get("input_tokens")),
            completion_tokens=_int(u.get("output_tokens")),
            reasoning_tokens=_int(otd.get("reasoning_tokens")) if isinstance(otd, dict) else 0,
            cached_tokens=_int(itd.get("cached_tokens")) if isinstance(itd, dict) else 0,
        )
    return None


def from_body(body: bytes) -> tuple[str | None, Usage | None]:
    """(model, usage) of a whole JSON answer (any route kind)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    if "response" in obj and isinstance(obj["response"], dict):  # a Responses event object sent whole
        obj = obj["response"]
    model = obj.get("model")
    return (model if type(model) is str else None), parse_usage(obj.get("usage"))


_USAGE_OBJ = re.compile(rb'"usage"\s*:\s*\{')
_TOKEN = re.compile(
    rb'"(?:content|text|reasoning_content|reasoning|refusal|partial_json|thinking|delta)"\s*:\s*"[^"]'
    rb'|"tool_calls"\s*:\s*\['
)
MAX_EVENT = 4 << 20  # an SSE event larger than this stops the parsing (the stream still passes through)


@dataclass(slots=True)
class SSEReader:
    """Incremental reader of a Server-Sent Events stream: fed the raw chunks as they pass through, it
    keeps the model, the latest usage and whether a token has been seen. Cheap on the hot path: an
    event is JSON-parsed only when it is the first one or contains a ``"usage": {`` object."""

    model: str | None = None
    usage: Usage | None = None
    token_seen: bool = False
    broken: bool = False
    _buf: bytearray = field(default_factory=bytearray)
    _parsed_first: bool = False

    def feed(self, chunk: bytes) -> bool:
        """Consume ``chunk``; ``True`` if it completed the first event carrying a generated token."""
        if self.broken:
            return False
        self._buf += chunk
        first_token = False
        while True:
            end, sep = self._boundary()
            if end < 0:
                if len(self._buf) > MAX_EVENT:
                    self.broken = True
                    self._buf.clear()
                return first_token
            event = bytes(self._buf[:end])
            del self._buf[: end + sep]
            if self._event(event) and not self.token_seen:
                self.token_seen = True
                first_token = True

    def _boundary(self) -> tuple[int, int]:
        buf = self._buf
        best, size = -1, 0
        for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
            i = buf.find(sep)
            if i >= 0 and (best < 0 or i < best):
                best, size = i, len(sep)
        return best, size

    def _event(self, raw: bytes) -> bool:
        """Handle one event; ``True`` if it carries a generated token."""
        data_lines = []
        name = b""
        for line in raw.splitlines():
            if line.startswith(b"data:"):
                data_lines.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        if not data_lines:
            return False
        data = b"\n".join(data_lines)
        if data == b"[DONE]":
            return False
        if not self._parsed_first or _USAGE_OBJ.search(data):
            self._parsed_first = True
            self._parse(data)
        if name:
            return name == b"content_block_delta" or name.endswith(b".delta")
        return _TOKEN.search(data) is not None

    def _parse(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        inner = obj.get("message") if isinstance(obj.get("message"), dict) else obj.get("response")
        for o in (inner, obj):
            if isinstance(o, dict):
                m = o.get("model")
                if isinstance(m, str) and m and self.model is None:
                    self.model = m
                u = parse_usage(o.get("usage"))
                if u is not None:
                    self.usage = _merge(self.usage, u, o.get("usage"))


def _merge(old: Usage | None, new: Usage, raw: Any) -> Usage:
    """Anthropic's ``message_delta`` usage may carry only ``output_tokens`` (cumulative): keep the
    prompt-side counts of ``message_start`` unless the delta restates them."""
    if old is None or not isinstance(raw, dict):
        return new
    if "prompt_tokens" in raw:
        return new
    restated = (
        any(k in raw for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
        and _int(raw.get("input_tokens"))
        + _int(raw.get("cache_read_input_tokens"))
        + _int(raw.get("cache_creation_input_tokens"))
        > 0
    )
    if restated:
        return new
    return Usage(
        prompt_tokens=old.prompt_tokens,
        completion_tokens=new.completion_tokens,
        reasoning_tokens=max(old.reasoning_tokens, new.reasoning_tokens),
        cached_tokens=old.cached_tokens,
        cache_creation_tokens=old.cache_creation_tokens,
    )


def wants_usage_injection(kind: str | None, body: bytes) -> bytes | None:
    """For an OpenAI chat/completions request with ``"stream": true`` that did not ask for usage, the
    body with ``stream_options.include_usage = true`` added (else ``None``: forward it unchanged)."""
    if kind not in ("chat", "completions") or body.find(b'"stream"') < 0:  # (find: `in` raises inside)
        return None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("stream") is not True:
        return None
    opts = obj.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage") is True:
        return None
    obj["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return orjson.dumps(obj)


def request_model(body: bytes) -> str | None:
    """The ``model`` a JSON request asked for (used when the answer does not name one)."""
    if b'"model"' not in body:
        return None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    m = obj.get("model") if isinstance(obj, dict) else None
    return m if isinstance(m, str) else None
