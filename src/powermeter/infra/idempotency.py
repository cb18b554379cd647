"""Request bodies and ``Idempotency-Key`` on POST: size limits, authentication before the body is read,
and replay of a retried request without doing the work twice.

Order of checks on a request with a body (POST, PUT, PATCH):

1. **Size.** A ``Content-Length`` over the limit (``POWERMETER_MAX_BODY_BYTES``, 1 MiB; ``/v1/batch``,
   ``/calc/api/bill`` and ``/calc/api/compare``: ``POWERMETER_MAX_BATCH_BODY_BYTES``, 16 MiB, which holds
   10,000 jobs with every field at its maximum length, or a year of 15-minute meter readings) is refused
   with 413 before a byte of the body is read; a body sent without a length is
   counted as it arrives and refused with 413 once over.
2. **Authentication first.** On a route that needs an API key, a request carrying an
   ``Idempotency-Key`` or a body over 64 KiB (or of unknown length) is authenticated from its headers
   before its body is read: a missing, unknown or revoked key gets its 401 without the server buffering
   anything or writing an idempotency record. (Small bodies without the header are read first and
   authenticated by the route, as before: their memory is bounded by the 64 KiB.)
3. **Idempotency.** Keys are scoped to the authenticated API key's id (however the key was sent:
   ``X-API-Key``, ``Authorization: Bearer``, any spacing), and on public routes to the client IP. The
   first request inserts a pending claim (a unique row) naming its holder (``host:pid:process token``)
   and a lease the holder renews while it works; a second request with the same key gets 409 with
   ``Retry-After`` until the first finishes. A claim whose holder died (``kill -9``, power cut) is taken
   over: at once when the holder was a process of this host that no longer runs, else when its lease
   has run out (``POWERMETER_IDEMPOTENCY_LEASE_S``, 30 s).
4. **What is replayed.** Only what the work produced: 2xx responses and the deterministic refusals of
   validation (400, 422). Anything else (401, 403, 404, 409, 413, 429, 5xx, a dropped connection)
   releases the claim, so a retry runs again: a retry after ``Retry-After`` is not answered with the
   stored 429. A replay needs the key to authenticate again, so a revoked key gets 401, not a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import orjson
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from powermeter.infra.clock import utc_iso
from powermeter.infra.db import idempotency as store
from powermeter.infra.errors import family_of
from powermeter.infra.routes import api_routes
from powermeter.infra.state import AppState

RETENTION = timedelta(hours=24)  # as Stripe keeps idempotency keys (docs.stripe.com/api/idempotent_requests)
MAX_KEY_LEN = 255
PREAUTH_BYTES = 64 * 1024  # bodies above this (or of unknown length) wait for the key to authenticate
REPLAYED_STATUSES = frozenset({400, 422})  # besides 2xx: validation refusals, the same for the same body
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

HOST = socket.gethostname()[:60]
PROCESS_TOKEN = secrets.token_hex(8)


def owner_id() -> str:
    """This process, as a claim's holder: ``host:pid:token`` (the token tells a restarted pid apart)."""
    return f"{HOST}:{os.getpid()}:{PROCESS_TOKEN}"


def _holder_is_dead(owner: str | None) -> bool:
    """True when ``owner`` was a process of this host that no longer runs (or this pid, restarted)."""
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, token = parts
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token != PROCESS_TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit}-byte limit ({limit >> 10} KiB); split the request")
        self.limit = limit


#: Routes whose bodies are bulk data (a 10,000-job batch; a year of 15-minute meter readings, or a Green
#: Button file of them): they get the larger limit; the route itself may refuse less.
BULK_PATHS = frozenset({"/v1/batch", "/calc/api/bill", "/calc/api/compare"})


def body_limit(st: AppState, path: str) -> int:
    s = st.settings
    return s.max_batch_body_bytes if path in BULK_PATHS else s.max_body_bytes


def _needs_auth(app: Any, scope: Scope) -> bool:
    """Whether the route this request goes to authenticates by API key (``Auth(...)``)."""
    path, method = scope["path"], scope["method"]
    for full_path, route in api_routes(getattr(app, "routes", ())):
        if method in (route.methods or ()) and _path_regex(full_path).match(path):
            return _has_auth(route.dependant)
    return False


@functools.lru_cache(maxsize=1024)
def _path_regex(path_format: str) -> re.Pattern[str]:
    from starlette.routing import compile_path

    return compile_path(path_format)[0]


def _has_auth(dependant: Any) -> bool:
    return any(getattr(d.call, "pm_auth_scopes", None) is not None or _has_auth(d) for d in dependant.dependencies)


Refusal = tuple[int, str, str, str]  # status, code, slug, detail
KeyScope = Callable[[Headers], Awaitable[tuple[Refusal | None, str | None]]]
"""``(refusal, scope)`` of a request's API key: the 401 of a missing, malformed, unknown or revoked key,
or the idempotency scope of the authenticated key. The accounts capability provides it; the
composition root passes it in (infra knows nothing of accounts)."""


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, key_scope: KeyScope) -> None:
        self.app = app
        self.key_scope = key_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        st: AppState = scope["app"].state.pm
        path: str = scope["path"]
        headers = Headers(scope=scope)
        limit = body_limit(st, path)
        length_text = headers.get("content-length")
        length: int | None = None
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                await _error(send, st, path, 400, "BAD_REQUEST", "bad_request", "Content-Length is not a number")
                return
            if length > limit:
                await _error(
                    send,
                    st,
                    path,
                    413,
                    "PAYLOAD_TOO_LARGE",
                    "payload_too_large",
                    BodyTooLarge(limit).detail,
                    {"limit_bytes": limit},
                )
                return
        elif "transfer-encoding" not in headers:
            length = 0  # no length and not chunked: no body
        raw_key = headers.get("idempotency-key")
        keyed = raw_key is not None and scope["method"] == "POST"
        big = length is None or length > PREAUTH_BYTES
        ident: str | None = None
        if (keyed or big) and _needs_auth(scope["app"], scope):
            refusal, ident = await self.key_scope(headers)
            if refusal is not None:
                status, code, slug, detail = refusal
                await _error(
                    send,
                    st,
                    path,
                    status,
                    code,
                    slug,
                    detail,
                    headers={"WWW-Authenticate": 'Bearer realm="powermeter"'},
                )
                return
        counted = _counting(receive, limit)
        if not keyed:
            await self.app(scope, counted, send)
            return
        assert raw_key is not None  # noqa: S101 (keyed)
        key = raw_key.strip()
        if not key or len(key) > MAX_KEY_LEN:
            await _error(
                send,
                st,
                path,
                400,
                "BAD_REQUEST",
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1 to {MAX_KEY_LEN} characters",
            )
            return
        if ident is None:
            client = scope.get("client")
            ident = "ip:" + (client[0] if client else "unknown")
        await _keyed(self.app, scope, counted, send, st, path, ident, key)


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses (413) a body growing past ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        msg = await receive()
        if msg["type"] == "http.request":
            seen += len(msg.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return msg

    return wrapped


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    return b"".join(chunks)


async def _keyed(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, st: AppState, path: str, ident: str, key: str
) -> None:
    try:
        body = await _read_body(receive)
    except BodyTooLarge as exc:
        await _error(
            send, st, path, 413, "PAYLOAD_TOO_LARGE", "payload_too_large", exc.detail, {"limit_bytes": exc.limit}
        )
        return
    if body is None:
        return
    query = scope.get("query_string", b"")
    fingerprint = hashlib.sha256(
        scope["method"].encode() + b" " + path.encode() + b"?" + query + b"\n" + body
    ).hexdigest()
    lease = timedelta(seconds=st.settings.idempotency_lease_s)
    me = owner_id()

    def claim() -> tuple[str, Any]:
        return store.claim(
            st.db,
            ident,
            key,
            fingerprint,
            st.clock.now(),
            lease=lease,
            me=me,
            retention=RETENTION,
            holder_is_dead=_holder_is_dead,
        )

    outcome, row = await anyio.to_thread.run_sync(claim)
    if outcome == "existing":
        if row.request_hash != fingerprint:
            await _error(
                send,
                st,
                path,
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body; use a new key for a new request",
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": row.status_code,
                "headers": [
                    (b"content-type", (row.content_type or "application/json").encode()),
                    (b"idempotent-replayed", b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": row.body or b""})
        return
    if outcome == "busy":
        wait = max(1, int((row - st.clock.now()).total_seconds() + 0.999))
        await _error(
            send,
            st,
            path,
            409,
            "IDEMPOTENCY_IN_PROGRESS",
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": str(wait)},
        )
        return
    await _run_claimed(app, scope, receive, send, st, (ident, key), body, lease, me)


async def _run_claimed(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    st: AppState,
    claim: tuple[str, str],
    body: bytes,
    lease: timedelta,
    me: str,
) -> None:
    sent_body = False

    async def replay_receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    status = 500
    content_type = "application/json"
    out: list[bytes] = []

    async def capture_send(message: Message) -> None:
        nonlocal status, content_type
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", ()):
                if k.lower() == b"content-type":
                    content_type = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))
        await send(message)

    def renew() -> None:
        store.renew(st.db, *claim, me, st.clock.now() + lease)

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(lease.total_seconds() / 3)
            try:
                await anyio.to_thread.run_sync(renew)
            except Exception:  # noqa: S112 - a missed renewal only shortens the lease
                continue

    # a plain task, not a task group: the app's own exceptions must propagate unwrapped
    beat = asyncio.ensure_future(heartbeat())
    try:
        try:
            await app(scope, replay_receive, capture_send)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
    finally:
        keep = 200 <= status < 300 or status in REPLAYED_STATUSES

        def finish() -> None:
            store.finish(st.db, *claim, me, keep=keep, status=status, content_type=content_type, body=b"".join(out))

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(finish)


async def _error(
    send: Send,
    st: AppState,
    path: str,
    status: int,
    code: str,
    slug: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    if family_of(path) == "calc":
        body: dict[str, Any] = {"error": slug, "message": detail}
    else:
        body = {"detail": detail, "error_code": code, "timestamp": utc_iso(st.clock.now())}
    body.update(extra or {})
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


def purge_expired(st: AppState, now: datetime) -> int:
    return store.purge(st.db, now - RETENTION)
