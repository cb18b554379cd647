"""Dashboard sign-in: server-side sessions, their cookie, and CSRF tokens.

* The cookie holds a random 256-bit token; the database keeps only its SHA-256 (``web_sessions.id``).
* Cookies are ``HttpOnly``, ``SameSite=Lax``, scoped to ``/dashboard``, and ``Secure`` when the
  request came over HTTPS or the service runs with ``POWERMETER_ENV=production``.
* A session ends after :data:`SESSION_IDLE` without a request, after :data:`SESSION_MAX` in any
  case, or at log-out (the row is deleted, so the cookie is worthless even if copied).
* CSRF: every form of a signed-in session carries the session's synchronizer token (or sends it as
  the ``X-CSRF-Token`` header, as htmx does); the log-in and sign-up forms, which have no session
  yet, carry ``HMAC(secret, nonce)`` where the nonce sits in an HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import Response

from powermeter.settings import Plan, Settings
from powermeter.web import repository as repo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SESSION_COOKIE = "pm_session"
PRELOGIN_COOKIE = "pm_prelogin"
COOKIE_PATH = "/dashboard"
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
PRELOGIN_MAX_AGE_S = 2 * 3600
TOUCH_RESOLUTION = timedelta(seconds=60)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WebSession:
    id: str
    account_id: str
    email: str
    plan: Plan
    is_admin: bool
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def start_session(conn: Connection, account_id: str, now: datetime, user_agent: str | None) -> str:
    """Create a session; returns the raw cookie token (never stored)."""
    token = secrets.token_urlsafe(32)
    repo.delete_expired_sessions(conn, now)
    repo.insert_session(
        conn,
        id=token_digest(token),
        account_id=account_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_MAX,
        user_agent=(user_agent or "")[:300] or None,
    )
    return token


def load_session(conn: Connection, settings: Settings, token: str | None, now: datetime) -> WebSession | None:
    """The live session of a cookie token, or None (unknown, expired or idle too long)."""
    if not token or len(token) > 200:
        return None
    sid = token_digest(token)
    row = repo.get_session(conn, sid)
    if row is None:
        return None
    last_seen = aware(row.last_seen_at)
    expires = aware(row.expires_at)
    if now >= expires or now - last_seen >= SESSION_IDLE:
        repo.delete_session(conn, sid)
        return None
    if now - last_seen >= TOUCH_RESOLUTION:
        repo.touch_session(conn, sid, now)
    return WebSession(
        id=sid,
        account_id=row.account_id,
        email=row.email,
        plan=settings.plan(row.plan),
        is_admin=bool(row.is_admin),
        csrf_token=row.csrf_token,
        created_at=aware(row.created_at),
        expires_at=expires,
    )


def end_session(conn: Connection, token: str | None) -> None:
    if token:
        repo.delete_session(conn, token_digest(token))


def cookie_secure(conn: HTTPConnection, settings: Settings) -> bool:
    return conn.url.scheme == "https" or settings.env == "production"


def set_session_cookie(response: Response, token: str, *, secure: bool, max_age_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age_s, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax")


# --- a just-created API key, carried across the post/redirect/get -------------------------------


def _seal_key(secret: str, session_id: str) -> bytes:
    return hashlib.sha256(b"powermeter-pending-key|" + secret.encode() + b"|" + session_id.encode()).digest()


def seal(secret: str, session_id: str, payload: dict[str, str]) -> str:
    """``payload`` (the new key and its name) encrypted with AES-256-GCM under a key bound to this
    session, so the row never holds the raw key and no other session can open it."""
    import base64

    import orjson
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    box = AESGCM(_seal_key(secret, session_id)).encrypt(nonce, orjson.dumps(payload), session_id.encode())
    return base64.urlsafe_b64encode(nonce + box).decode()


def unseal(secret: str, session_id: str, sealed: str) -> dict[str, str] | None:
    import base64

    import orjson
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        data = AESGCM(_seal_key(secret, session_id)).decrypt(raw[:12], raw[12:], session_id.encode())
        out = orjson.loads(data)
    except (ValueError, InvalidTag, orjson.JSONDecodeError):
        return None
    return out if isinstance(out, dict) else None


# --- CSRF ----------------------------------------------------------------------------------------


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def new_prelogin_nonce() -> str:
    return secrets.token_urlsafe(24)


def prelogin_token(secret: str, nonce: str) -> str:
    """The CSRF token of the log-in and sign-up forms, bound to the browser's pre-login cookie."""
    return hmac.new(secret.encode(), b"powermeter-prelogin-csrf|" + nonce.encode(), hashlib.sha256).hexdigest()


def set_prelogin_cookie(response: Response, nonce: str, *, secure: bool) -> None:
    response.set_cookie(
        PRELOGIN_COOKIE,
        nonce,
        max_age=PRELOGIN_MAX_AGE_S,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
