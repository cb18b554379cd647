"""``Idempotency-Key`` on POST: a retry with the same key and body replays the first response
without doing the work again; the same key with another body is a 422.

Keys are scoped to the caller: a keyed hash of the API key when one is sent, else the client IP.
The first request inserts a pending record (a unique row), so two concurrent requests with the same
key cannot both run: the second gets 409 until the first finishes. Server errors (5xx) release the
key so the client can retry.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from powermeter.accounts.tables import idempotency_keys
from powermeter.infra.clock import utc_iso
from powermeter.infra.errors import family_of
from powermeter.infra.state import AppState

RETENTION = timedelta(hours=24)  # as Stripe keeps idempotency keys (docs.stripe.com/api/idempotent_requests)
MAX_KEY_LEN = 255


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        st: AppState = scope["app"].state.pm
        key = raw_key.decode("latin-1").strip()
        path = scope["path"]
        if not key or len(key) > MAX_KEY_LEN:
            await _error(send, st, path, 400, "BAD_REQUEST", "invalid_idempotency_key",
                         f"Idempotency-Key must be 1 to {MAX_KEY_LEN} characters")
            return

        # read the whole body (it is needed for the fingerprint and then replayed to the app)
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        cred = headers.get(b"authorization") or headers.get(b"x-api-key")
        if cred:
            ident = hmac.new(st.secret.encode(), cred, hashlib.sha256).hexdigest()[:40]
        else:
            client = scope.get("client")
            ident = "ip:" + (client[0] if client else "unknown")
        fingerprint = hashlib.sha256(scope["method"].encode() + b" " + path.encode() + b"\n" + body).hexdigest()
        now = st.clock.now()

        def claim() -> tuple[str, Any]:
            with st.db.begin() as conn:
                row = conn.execute(
                    sa.select(idempotency_keys).where(
                        idempotency_keys.c.scope == ident, idempotency_keys.c.key == key
                    )
                ).first()
                if row is not None:
                    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
                    if now - created > RETENTION:
                        conn.execute(idempotency_keys.delete().where(
                            idempotency_keys.c.scope == ident, idempotency_keys.c.key == key))
                    else:
                        return "existing", row
                try:
                    with conn.begin_nested():
                        conn.execute(idempotency_keys.insert().values(
                            scope=ident, key=key, request_hash=fingerprint, created_at=now))
                except IntegrityError:
                    return "race", None
                return "claimed", None

        outcome, row = await anyio.to_thread.run_sync(claim)
        if outcome == "existing":
            if row.request_hash != fingerprint:
                await _error(send, st, path, 422, "IDEMPOTENCY_KEY_REUSED", "idempotency_key_reused",
                             "this Idempotency-Key was already used with a different request body; "
                             "use a new key for a new request")
                return
            if row.status_code is None:
                await _error(send, st, path, 409, "IDEMPOTENCY_IN_PROGRESS", "idempotency_in_progress",
                             "a request with this Idempotency-Key is still being processed; retry shortly")
                return
            await send({"type": "http.response.start", "status": row.status_code, "headers": [
                (b"content-type", (row.content_type or "application/json").encode()),
                (b"idempotent-replayed", b"true"),
            ]})
            await send({"type": "http.response.body", "body": row.body or b""})
            return
        if outcome == "race":
            await _error(send, st, path, 409, "IDEMPOTENCY_IN_PROGRESS", "idempotency_in_progress",
                         "a request with this Idempotency-Key is still being processed; retry shortly")
            return

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

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            def finish() -> None:
                with st.db.begin() as conn:
                    cond = (idempotency_keys.c.scope == ident) & (idempotency_keys.c.key == key)
                    if status >= 500:
                        conn.execute(idempotency_keys.delete().where(cond))
                    else:
                        conn.execute(idempotency_keys.update().where(cond).values(
                            status_code=status, content_type=content_type, body=b"".join(out)))

            await anyio.to_thread.run_sync(finish)


async def _error(send: Send, st: AppState, path: str, status: int, code: str, slug: str, detail: str) -> None:
    if family_of(path) == "calc":
        body: dict[str, Any] = {"error": slug, "message": detail}
    else:
        body = {"detail": detail, "error_code": code, "timestamp": utc_iso(st.clock.now())}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


def purge_expired(st: AppState, now: datetime) -> int:
    with st.db.begin() as conn:
        res = conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < now - RETENTION))
        return int(res.rowcount)
