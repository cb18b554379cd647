"""``powermeter gateway``: an LLM API gateway that meters every call with the provider's exact usage.

An ASGI application (served by uvicorn). A caller picks the upstream by the first path segment:
``POST http://GATEWAY/openai/v1/chat/completions`` goes to ``https://api.openai.com/v1/chat/completions``
when the gateway runs with ``--upstream openai=https://api.openai.com``. Everything is forwarded as it
came (method, path, query, body, headers with the caller's own provider credentials), except:

- hop-by-hop headers (RFC 9110 §7.6.1) and ``Host`` are not forwarded; ``X-Powermeter-Tag`` (the
  caller's tag for the record) is not forwarded either;
- on the metered routes (``POST …/chat/completions``, ``…/completions``, ``…/responses``,
  ``…/embeddings`` and Anthropic's ``…/messages``) ``Accept-Encoding`` keeps only ``gzip``,
  ``deflate`` and ``identity`` (the gateway must be able to read the usage; it decodes a copy, the
  caller gets the bytes the upstream sent);
- an OpenAI chat/completions request with ``"stream": true`` that did not ask for usage gets
  ``"stream_options": {"include_usage": true}`` added: the upstream then sends one more chunk, with
  empty ``choices`` and the usage, before ``data: [DONE]``; it is passed on (OpenAI SDKs ignore a chunk
  without choices).

The answer comes back unchanged: streams (SSE) chunk by chunk as they arrive, whole JSON answers with
``X-Energy-Wh`` and ``X-CO2-Grams`` added when the footprint is known (computed by
:class:`powermeter.gateway.meter.Footprints` with the server's model and site resolution and
``estimate_inference``, so it equals the record the server stores; a unit test holds that). Upstream
errors (status ≥ 400) pass through unchanged and are not recorded; an upstream that cannot be reached
or does not answer within the read timeout gets 502 / 504 from the gateway, not recorded.

After the last byte of a successful metered answer, one record (``source: "gateway"``, the exact
tokens, the provider, the model the upstream named, the start, first-token and end times, the tag) is
handed to :class:`~powermeter.gateway.recorder.Recorder`, which sends it in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import re
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from powermeter.gateway.meter import Footprints, check_fields, footprint_value, valid_name
from powermeter.gateway.recorder import Recorder
from powermeter.gateway.usage import (
    SSEReader,
    Usage,
    from_body,
    parse_usage,
    request_model,
    route_kind,
    wants_usage_injection,
)
from powermeter.inference.schemas import MAX_TOKENS
from powermeter.inference.service import Engine, build_engine
from powermeter.proxy.asgi import HOP_BY_HOP, Receive, Scope, Send, body_stream
from powermeter.proxy.upstream import LeanClient, UpstreamError, UpstreamResponse

log = logging.getLogger(__name__)

TAG_HEADER = b"x-powermeter-tag"
SMALL_BODY = 1 << 20  # unmetered request bodies up to this size are read whole before forwarding
MAX_TAG = 200
_TAG_RE = re.compile(r"^[\x20-\x7e]{1,200}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DROP_REQUEST = HOP_BY_HOP | {b"host", b"content-length", TAG_HEADER}
_DECODABLE = {"gzip", "deflate", "identity", "x-gzip"}
_SPECIAL_REQUEST = frozenset(_DROP_REQUEST | {b"transfer-encoding", b"accept-encoding"})


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    name: str
    url: str
    provider: str
    origin: httpx.URL = field(repr=False, compare=False)
    prefix: bytes = field(repr=False, compare=False)


def make_upstream(name: str, url: str, provider: str | None = None) -> UpstreamSpec:
    if not _NAME_RE.match(name):
        raise ValueError(f"upstream name must be letters, digits, '_', '.', '-' (1 to 64), got {name!r}")
    u = httpx.URL(url)
    if u.scheme not in ("http", "https") or not u.host:
        raise ValueError(f"upstream URL must be http(s)://host[:port][/prefix], got {url!r}")
    prefix = u.raw_path.rstrip(b"/") if u.raw_path not in (b"", b"/") else b""
    provider = (provider or name).strip()
    if not valid_name(provider, 100):
        raise ValueError(f"provider must be 1 to 100 characters without control characters, got {provider!r}")
    return UpstreamSpec(name, url, provider, u.copy_with(raw_path=b"/"), prefix)


def parse_upstream(spec: str) -> UpstreamSpec:
    """``NAME=URL[@PROVIDER]``: ``openai=https://api.openai.com``, ``local=http://10.0.0.5:8000@meta``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ValueError(f"--upstream must look like NAME=URL[@PROVIDER], got {spec!r}")
    url, provider = rest.strip(), None
    head, at, tail = url.rpartition("@")
    if at and tail and "/" not in tail and ":" not in tail:
        url, provider = head, tail
    return make_upstream(name.strip(), url, provider)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    upstreams: tuple[UpstreamSpec, ...]
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0
    """Seconds to wait for the upstream's response headers (a long non-streamed generation counts)."""
    max_request_bytes: int = 64 << 20
    """Metered request bodies are read whole (to add ``include_usage``); larger ones get 413."""
    max_buffered_bytes: int = 16 << 20
    """Non-streamed answers up to this size are read whole (for X-Energy-Wh); larger ones are streamed and
    their usage read from the last 64 KiB."""
    status_path: str = "/.well-known/powermeter-gateway"
    detected_region: str | None = None
    """Region of the upstream's data centre, when known (sent as ``detected_region``)."""


@dataclass(slots=True)
class Route:
    """A request to forward: its upstream, the path below the upstream's name, the metered kind (or
    ``None``), the caller's tag, the headers to send (hop-by-hop, Host, Content-Length and the tag
    removed) and the request's own framing."""

    up: UpstreamSpec
    path: bytes
    kind: str | None
    tag: str | None
    headers: list[tuple[bytes, bytes]]
    content_length: int | None
    chunked: bool


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer of the gateway itself (JSON)."""

    status: int
    body: bytes


def error_answer(status: int, code: str, message: str) -> Answer:
    """The gateway's own errors, in a shape both OpenAI and Anthropic SDKs read (``error.message``)."""
    return Answer(
        status,
        orjson.dumps(
            {"type": "error", "error": {"type": "powermeter_gateway_error", "code": code, "message": message}}
        ),
    )


class Gateway:
    """The gateway as an ASGI application (it handles ``lifespan`` itself)."""

    def __init__(
        self, config: GatewayConfig, recorder: Recorder | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not config.upstreams:
            raise ValueError("the gateway needs at least one --upstream NAME=URL")
        names = [u.name for u in config.upstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must be unique, got {names}")
        if config.detected_region and not valid_name(config.detected_region, 100):
            raise ValueError(
                f"region must be 1 to 100 characters without control characters, got {config.detected_region!r}"
            )
        self.config = config
        self.recorder = recorder
        self.clock = clock
        self.upstreams = {u.name.encode(): u for u in config.upstreams}
        self.client = LeanClient(connect_timeout_s=config.connect_timeout_s, read_timeout_s=config.read_timeout_s)
        self._status_path = config.status_path.encode()
        self._kinds: dict[bytes, str | None] = {}  # route kind per path (paths repeat: one lookup)
        self.calls = 0
        self.recorded = 0
        self.unmetered = 0  # metered routes whose answer carried no usage
        self.engine: Engine | None = None  # loaded by start()
        self.footprints: Footprints | None = None  # X-Energy-Wh / X-CO2-Grams, built by start()
        self._loop: asyncio.AbstractEventLoop | None = None
        # record idempotency keys: random per gateway run, then a counter (unique without a uuid4 per call)
        self._key_prefix = f"gw-{uuid.uuid4().hex}-".encode()
        self._region = config.detected_region
        self._key_seq = itertools.count(1)
        self._line_heads: dict[str, bytes] = {}  # per upstream name: _line_head()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.engine = build_engine()  # the model catalog and site data, for X-Energy-Wh
        self.footprints = Footprints(self.engine)
        self._loop = asyncio.get_running_loop()  # kept: get_running_loop() costs a getpid() per call
        # The datasets live as long as the process: moved out of the collector's reach, so the
        # collections the per-call garbage triggers do not scan them again and again.
        gc.collect()
        gc.freeze()
        if self.recorder is not None:
            await self.recorder.start()

    async def aclose(self) -> None:
        if self.recorder is not None:
            await self.recorder.aclose()
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    try:
                        await self.start()
                    except Exception as exc:  # reported to the server, which exits
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def status(self) -> dict[str, Any]:
        return {
            "upstreams": [{"name": u.name, "url": u.url, "provider": u.provider} for u in self.config.upstreams],
            "calls": self.calls,
            "recorded": self.recorded,
            "unmetered": self.unmetered,
            "recorder": self.recorder.status() if self.recorder is not None else None,
        }

    # ------------------------------------------------------------------ one call

    def route(self, method: str, raw_path: bytes, raw_headers: list[tuple[bytes, bytes]]) -> Route | Answer:
        """What to do with a request, from its head alone (shared by both HTTP paths, so they forward
        alike): the gateway's own answer (status page, unknown upstream, bad tag), or the route to
        forward it on with the headers to send."""
        if raw_path == self._status_path and method == "GET":
            return Answer(200, orjson.dumps(self.status()))
        name, _, rest = raw_path[1:].partition(b"/")
        up = self.upstreams.get(name)
        if up is None:
            known = ", ".join(u.name for u in self.config.upstreams)
            return error_answer(
                404,
                "unknown_upstream",
                f"no upstream named {name.decode('latin-1')!r}: the path must start with one of "
                f"/{known} (e.g. base_url=http://GATEWAY/{self.config.upstreams[0].name}/v1)",
            )
        self.calls += 1
        path = b"/" + rest
        kind: str | None = None
        if method == "POST":
            try:
                kind = self._kinds[path]
            except KeyError:
                kind = route_kind(path.decode("latin-1"))
                if len(self._kinds) >= 1024:
                    self._kinds.clear()
                self._kinds[path] = kind

        tag: str | None = None
        headers: list[tuple[bytes, bytes]] = []
        content_length: int | None = None
        chunked = False
        for k, v in raw_headers:
            if k not in _SPECIAL_REQUEST:  # most headers: passed on as they are (one set lookup)
                headers.append((k, v))
            elif k == TAG_HEADER:
                tag = v.decode("latin-1").strip() or None
            elif k == b"content-length":
                try:  # noqa: SIM105 - suppress() costs an object and two calls per call
                    content_length = int(v)
                except ValueError:
                    pass
            elif k == b"transfer-encoding":
                chunked = b"chunked" in v.lower()
            elif k in _DROP_REQUEST:
                continue
            elif k == b"accept-encoding" and kind is not None:
                kept = [t for t in v.decode("latin-1").split(",") if t.split(";")[0].strip().lower() in _DECODABLE]
                if kept:
                    headers.append((k, ",".join(kept).strip().encode()))
            else:
                headers.append((k, v))
        if tag is not None and not _TAG_RE.match(tag):
            return error_answer(
                400,
                "invalid_powermeter_tag",
                f"X-Powermeter-Tag must be 1 to {MAX_TAG} printable ASCII characters",
            )
        return Route(up, path, kind, tag, headers, content_length, chunked)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        method: str = scope["method"]
        route = self.route(method, raw_path, scope["headers"])
        if isinstance(route, Answer):
            await _send_answer(send, route)
            return
        up, path, kind, tag, headers = route.up, route.path, route.kind, route.tag, route.headers
        content_length, chunked = route.content_length, route.chunked
        query: bytes = scope.get("query_string", b"")
        target = up.prefix + path + (b"?" + query if query else b"")

        body: bytes | None = None
        stream: AsyncIterator[bytes] | None = None
        if kind is not None:
            if content_length is not None and content_length > self.config.max_request_bytes:
                await _error(
                    send,
                    413,
                    "request_too_large",
                    f"request body of {content_length} bytes exceeds the gateway's limit of "
                    f"{self.config.max_request_bytes} bytes",
                )
                return
            body = await _read_body(receive, self.config.max_request_bytes)
            if body is None:
                await _error(
                    send,
                    413,
                    "request_too_large",
                    f"request body exceeds the gateway's limit of {self.config.max_request_bytes} bytes",
                )
                return
            injected = wants_usage_injection(kind, body)
            if injected is not None:
                body = injected
            headers.append((b"content-length", str(len(body)).encode()))
        elif not chunked and not content_length:
            body = b""
        elif not chunked and content_length is not None and content_length <= SMALL_BODY:
            body = await _read_body(receive, SMALL_BODY)  # one write upstream instead of two
            headers.append((b"content-length", str(len(body or b"")).encode()))
        else:
            if content_length is not None and not chunked:
                headers.append((b"content-length", str(content_length).encode()))
            stream = body_stream(receive)

        start = self.clock()
        try:
            resp = await self.client.request(up.origin, method, target, headers, body, stream)
        except UpstreamError as exc:
            timeout = isinstance(exc.__cause__, TimeoutError)
            await _error(
                send,
                504 if timeout else 502,
                "upstream_timeout" if timeout else "upstream_unreachable",
                f"upstream {up.name!r}: {exc}",
            )
            return
        try:
            if kind is None or not 200 <= resp.status < 300:
                await _relay(resp, send)
                return
            ctype = b""
            encoding = b""
            out_headers: list[tuple[bytes, bytes]] = []  # one pass: what is passed on, and what is read
            for k, v in resp.headers:
                lk = k.lower()
                if lk in HOP_BY_HOP:
                    continue
                if lk == b"content-type":
                    ctype = v.lower()
                elif lk == b"content-encoding":
                    encoding = v.lower().strip()
                out_headers.append((k, v))
            if b"text/event-stream" in ctype:
                line = await self._relay_stream(resp, out_headers, receive, send, encoding, start, body or b"", up, tag)
            else:
                line = await self._relay_whole(resp, out_headers, send, encoding, start, body or b"", up, tag)
        finally:
            await resp.aclose()
        self.keep(line)

    @staticmethod
    def _line(metered: tuple[bytes, tuple[float, float] | None] | None) -> bytes | None:
        return None if metered is None else metered[0]

    def keep(self, line: bytes | None) -> None:
        """Queue a finished call's record, its spool line from :meth:`meter` (after its answer's last byte)."""
        if line is not None and self.recorder is not None:
            self.recorder.add(line)
            self.recorded += 1

    def meter(
        self,
        up: UpstreamSpec,
        model: str | None,
        usage: Usage | None,
        request_body: bytes,
        start: float,
        first: float | None,
        end: float,
        tag: str | None,
        footprint: bool = False,
    ) -> tuple[bytes, tuple[float, float] | None] | None:
        """The record of one call, as the JSON line the spool keeps and the server is sent (checked as the
        server will check it, :func:`~.meter.check_fields`), and with ``footprint`` its unrounded
        ``(energy_wh, co2_g)`` (``None`` for a model the catalog does not know); ``None`` without usage.

        The line is written straight from a template (no dictionary, no JSON encoder per call): the
        provider, source and region are the upstream's constant head, the model and tag are JSON-encoded
        once per distinct value."""
        if usage is None:
            self.unmetered += 1
            return None
        if not model:
            model = request_model(request_body)
        model = model[:200] if model else None
        p, c, r, cached = usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.cached_tokens
        if p > MAX_TOKENS:
            p = MAX_TOKENS
        if c > MAX_TOKENS:
            c = MAX_TOKENS
        if r > MAX_TOKENS:
            r = MAX_TOKENS
        if cached > MAX_TOKENS:
            cached = MAX_TOKENS
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        first_ms = None if first is None else int(first * 1000)
        problem = check_fields(model, start_ms, end_ms, first_ms)
        if problem is not None:
            log.warning("gateway record invalid, not recorded: %s", problem)
            self.unmetered += 1
            return None
        head = self._line_heads.get(up.name)
        if head is None:
            head = self._line_heads[up.name] = _line_head(up.provider, self._region)
        line = head + _LINE % (p, c, r, cached, start_ms, end_ms, self._key_prefix, next(self._key_seq))
        if model is not None:
            line += b',"model":' + _json_str(model)
        if first_ms is not None:
            line += b',"firstTokenTimeMs":%d' % first_ms
        if tag is not None:
            line += b',"tag":' + _json_str(tag)
        fp = None
        if footprint and self.footprints is not None:
            fp = self.footprints.raw(up.provider, model, self._region, p, c, r, cached, start_ms, first_ms, end_ms)
        return line + b"}\n", fp

    async def _relay_stream(
        self,
        resp: UpstreamResponse,
        headers: list[tuple[bytes, bytes]],
        receive: Receive,
        send: Send,
        encoding: bytes,
        start: float,
        request_body: bytes,
        up: UpstreamSpec,
        tag: str | None,
    ) -> bytes | None:
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        reader = SSEReader()
        decoder = _decoder(encoding)
        first: float | None = None
        # the request body has been read: the next message is the client's disconnect (or the end)
        gone = asyncio.ensure_future(receive(), loop=self._loop)  # a loop given: no getpid()
        try:
            async for chunk in resp.aiter():
                if gone.done():  # the caller left: stop the generation upstream too (the connection closes)
                    self.unmetered += 1
                    return None
                if not chunk:
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if reader.feed(decoder(chunk) if decoder is not None else chunk) and first is None:
                    first = self.clock()
        finally:
            gone.cancel()
        end = self.clock()
        await send({"type": "http.response.body", "body": b""})
        return self._line(self.meter(up, reader.model, reader.usage, request_body, start, first, end, tag))

    async def _relay_whole(
        self,
        resp: UpstreamResponse,
        headers: list[tuple[bytes, bytes]],
        send: Send,
        encoding: bytes,
        start: float,
        request_body: bytes,
        up: UpstreamSpec,
        tag: str | None,
    ) -> bytes | None:
        limit = self.config.max_buffered_bytes
        length = resp.content_length
        if length is not None and length > limit:
            return await self._relay_large(resp, send, headers, encoding, start, request_body, up, tag)
        whole = resp.take_complete()  # usually there: the body came with the head
        if whole is not None and len(whole) > limit:  # (only with a limit below the client's read buffer)
            await send({"type": "http.response.start", "status": resp.status, "headers": headers})
            return await self._stream_rest([whole], resp.aiter(), send, encoding, start, request_body, up, tag)
        data = whole if whole is not None else await resp.next_chunk()
        if whole is None and data:
            parts = [data]
            size = len(data)
            while chunk := await resp.next_chunk():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:  # chunked and larger than the limit: stream the rest
                    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
                    return await self._stream_rest(parts, resp.aiter(), send, encoding, start, request_body, up, tag)
            if len(parts) > 1:
                data = b"".join(parts)
        end = self.clock()
        model, usage = from_body(_decode_all(encoding, data))
        metered = self.meter(up, model, usage, request_body, start, None, end, tag, footprint=True)
        if length is None:
            headers.append((b"content-length", str(len(data)).encode()))
        if metered is not None and metered[1] is not None:
            headers.append((b"x-energy-wh", footprint_value(metered[1][0])))
            headers.append((b"x-co2-grams", footprint_value(metered[1][1])))
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return self._line(metered)

    async def _relay_large(
        self,
        resp: UpstreamResponse,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        encoding: bytes,
        start: float,
        request_body: bytes,
        up: UpstreamSpec,
        tag: str | None,
    ) -> bytes | None:
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        return await self._stream_rest([], resp.aiter(), send, encoding, start, request_body, up, tag)

    async def _stream_rest(
        self,
        sent_first: list[bytes],
        it: AsyncIterator[bytes],
        send: Send,
        encoding: bytes,
        start: float,
        request_body: bytes,
        up: UpstreamSpec,
        tag: str | None,
    ) -> bytes | None:
        """A large whole answer: streamed through; the model is read from its first 64 KiB and the
        usage from its last 64 KiB (both OpenAI and Anthropic put ``usage`` at the end)."""
        decoder = _decoder(encoding)
        head = bytearray()
        tail = bytearray()
        window = 64 << 10

        def keep(chunk: bytes) -> None:
            plain = decoder(chunk) if decoder is not None else chunk
            if len(head) < window:
                head.extend(plain[: window - len(head)])
            tail.extend(plain)
            if len(tail) > 2 * window:
                del tail[: len(tail) - window]

        for chunk in sent_first:
            keep(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        async for chunk in it:
            keep(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        end = self.clock()
        await send({"type": "http.response.body", "body": b""})
        model, usage = _scan_large(bytes(head), bytes(tail))
        return self._line(self.meter(up, model, usage, request_body, start, None, end, tag))


# ---------------------------------------------------------------------- helpers


def _response_headers(resp: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in resp.headers if k.lower() not in HOP_BY_HOP]


async def _relay(resp: UpstreamResponse, send: Send) -> None:
    """Pass an answer through unchanged, chunk by chunk."""
    await send({"type": "http.response.start", "status": resp.status, "headers": _response_headers(resp)})
    async for chunk in resp.aiter():
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


_LINE = (
    b'"prompt_tokens":%d,"completion_tokens":%d,"reasoning_tokens":%d,"cached_tokens":%d,'
    b'"startTimeMs":%d,"endTimeMs":%d,"idempotency_key":"%s%x"'
)
_JSON_STRS: dict[str, bytes] = {}  # model names and tags, JSON-encoded (a few per gateway)


def _json_str(value: str) -> bytes:
    """``value`` as a JSON string, memoised (bounded)."""
    out = _JSON_STRS.get(value)
    if out is None:
        if len(_JSON_STRS) >= 4096:
            _JSON_STRS.clear()
        try:
            out = orjson.dumps(value)
        except orjson.JSONEncodeError:  # a lone surrogate (a "\ud800" escape a lenient decoder let through)
            out = orjson.dumps(value.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        _JSON_STRS[value] = out
    return out


def _line_head(provider: str, region: str | None) -> bytes:
    """The start of every record line of one upstream: its provider, the source, and the region."""
    head = b'{"provider":' + orjson.dumps(provider) + b',"source":"gateway","is_estimated":false,'
    if region:
        head += b'"detected_region":' + orjson.dumps(region) + b","
    return head


def _decoder(encoding: bytes) -> Callable[[bytes], bytes] | None:
    """Incremental decoder for a gzip/deflate body (a copy, for reading usage), or ``None``."""
    if encoding in (b"", b"identity"):
        return None
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        d = zlib.decompressobj(47 if encoding != b"deflate" else 15)

        def feed(chunk: bytes) -> bytes:
            try:
                return d.decompress(chunk)
            except zlib.error:
                return b""

        return feed
    return lambda _chunk: b""  # an encoding the gateway cannot read: no usage, the answer still passes


def _decode_all(encoding: bytes, data: bytes) -> bytes:
    dec = _decoder(encoding)
    return dec(data) if dec is not None else data


def _scan_large(head: bytes, tail: bytes) -> tuple[str | None, Usage | None]:
    dec = json.JSONDecoder()
    model: str | None = None
    usage: Usage | None = None
    text_tail = tail.decode("utf-8", "replace")
    i = text_tail.rfind('"usage"')
    if i >= 0:
        j = text_tail.find(":", i)
        with contextlib.suppress(ValueError):
            obj, _ = dec.raw_decode(text_tail[j + 1 :].lstrip())
            usage = parse_usage(obj)
    for text in (head.decode("utf-8", "replace"), text_tail):
        m = re.search(r'"model"\s*:\s*"((?:[^"\\]|\\.){1,200})"', text)
        if m:
            model = m.group(1)
            break
    return model, usage


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(parts)


async def _send_answer(send: Send, answer: Answer) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


async def _error(send: Send, status: int, code: str, message: str) -> None:
    await _send_answer(send, error_answer(status, code, message))
