"""Dependencies of dashboard routes: the signed-in session, its transaction and CSRF checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, Form, Header, Request

from powermeter.accounts.service import ALL_SCOPES, Principal
from powermeter.infra.security import mask_key
from powermeter.infra.state import AppState, app_state
from powermeter.web import sessions
from powermeter.web.sessions import WebSession

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")


class LoginRequired(Exception):
    """No live session: the handler redirects to the log-in page."""


class CsrfRefused(Exception):
    """A state-changing request without a valid CSRF token (or from another origin)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Page:
    """A signed-in request's unit of work: one transaction, the session and the request time."""

    request: Request
    conn: Connection
    now: datetime
    state: AppState
    session: WebSession

    @property
    def account_id(self) -> str:
        return self.session.account_id

    def principal(self) -> Principal:
        """The dashboard acts for the account with every scope (it is the account's owner)."""
        s = self.session
        return Principal(
            account_id=s.account_id,
            email=s.email,
            plan=s.plan,
            key_id="dashboard",
            key_name="dashboard session",
            masked_key=mask_key("----"),
            scopes=frozenset(ALL_SCOPES),
        )


@dataclass(frozen=True, slots=True)
class AnonPage:
    request: Request
    conn: Connection
    now: datetime
    state: AppState


def check_origin(request: Request) -> None:
    """Refuse a state-changing request whose ``Origin`` (or ``Referer``) names another site."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return  # some privacy settings send neither; the token still has to match
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        raise CsrfRefused("the request came from an opaque origin")
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise CsrfRefused("the request came from another site")


async def _blocking(st: AppState, fn: Callable[..., T], *args: Any) -> T:
    """Database work of a dependency: inline on SQLite (the unit holds the connection alone), in a
    worker thread on PostgreSQL."""
    if st.db.is_sqlite:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)


# Every dashboard request runs in the app's unit of work (infra/db/unit_of_work.py), like the API:
# it waits for the database on the event loop, never in a worker thread, and joins SQLite's group commit.
@asynccontextmanager
async def _session_tx(request: Request) -> AsyncIterator[tuple[Connection, WebSession, AppState, datetime]]:
    st = app_state(request)
    now = st.clock.now()
    token = request.cookies.get(sessions.SESSION_COOKIE)
    async with st.db.units.unit() as conn:
        s = await _blocking(st, sessions.load_session, conn, st.settings, token, now)
        if s is None:
            raise LoginRequired()
        request.state.web_session = s
        request.state.csrf_token = s.csrf_token
        yield conn, s, st, now


async def signed_in(request: Request) -> AsyncIterator[Page]:
    async with _session_tx(request) as (conn, s, st, now):
        yield Page(request, conn, now, st, s)


async def signed_in_form(
    request: Request,
    csrf_token: Annotated[str | None, Form()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> AsyncIterator[Page]:
    check_origin(request)
    async with _session_tx(request) as (conn, s, st, now):
        if not sessions.tokens_match(s.csrf_token, csrf_token or x_csrf_token):
            raise CsrfRefused("the form's CSRF token is missing or does not match this session")
        yield Page(request, conn, now, st, s)


async def anonymous(request: Request) -> AsyncIterator[AnonPage]:
    st = app_state(request)
    async with st.db.units.unit() as conn:
        yield AnonPage(request, conn, st.clock.now(), st)


async def anonymous_form(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> AsyncIterator[AnonPage]:
    check_origin(request)
    st = app_state(request)
    nonce = request.cookies.get(sessions.PRELOGIN_COOKIE)
    expected = sessions.prelogin_token(st.secret, nonce) if nonce else None
    if not sessions.tokens_match(expected, csrf_token):
        raise CsrfRefused("the form's CSRF token is missing or does not match this browser")
    async with st.db.units.unit() as conn:
        yield AnonPage(request, conn, st.clock.now(), st)


def SignedIn() -> Any:
    return Depends(signed_in, scope="function")


def SignedInForm() -> Any:
    return Depends(signed_in_form, scope="function")


def Anonymous() -> Any:
    return Depends(anonymous, scope="function")


def AnonymousForm() -> Any:
    return Depends(anonymous_form, scope="function")
