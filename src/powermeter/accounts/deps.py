"""FastAPI dependencies: API-key authentication, scopes, quotas and the per-request transaction.

Usage in a router::

    @router.post("/v1/report")
    def report(body: ReportIn, tx: Tx = Auth("report:write")) -> ...:
        ...  # tx.conn is inside the request's one transaction

The transaction commits when the route function returns, before the response is sent (so a failed
commit is never reported as a success), and rolls back if it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request, Response
from starlette.requests import HTTPConnection

from powermeter.accounts import repository as repo
from powermeter.accounts import service
from powermeter.accounts.service import Principal
from powermeter.infra.db import Database
from powermeter.infra.db.unit_of_work import ready, run_blocking
from powermeter.infra.errors import ApiError, Forbidden, RateLimited, Unauthorized
from powermeter.infra.idempotency import KeyScope, Refusal
from powermeter.infra.security import hash_api_key
from powermeter.infra.state import AppState, app_state
from powermeter.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tx:
    """One request's unit of work: its connection (inside a transaction), caller and time."""

    conn: Connection
    principal: Principal
    now: datetime
    state: AppState

    @property
    def settings(self) -> Settings:
        return self.state.settings

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work on this unit's connection from an ``async def`` route: inline on
        SQLite (the request holds the connection alone; saves a thread hop, ~80 µs), in a worker
        thread on PostgreSQL (network round trips must not block the event loop)."""
        if self.state.db.is_sqlite:
            return fn(*args)
        return await run_blocking(self.conn, fn, *args)


def _extract_key(request: Request) -> str:
    return extract_key(request.headers)


def extract_key(headers: Mapping[str, str]) -> str:
    """The API key of ``X-API-Key: K`` or ``Authorization: Bearer K`` (401 when missing or malformed)."""
    x_api_key = headers.get("x-api-key")
    if x_api_key:
        return x_api_key.strip()
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
    raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


def _per_minute_limit(
    request: Request, response: Response, st: AppState, ident: str, per_minute: int, kind: str = "key"
) -> None:
    """Hit the ``kind``/``ident`` counter; set RateLimit-* headers; 429 with Retry-After when over."""
    res = st.limiter.hit(f"{per_minute}/minute", kind, ident)
    headers = res.headers(f'"minute";q={per_minute};w=60')
    request.state.ratelimit_headers = headers
    response.headers.update(headers)
    if not res.allowed:
        raise RateLimited(
            f"rate limit of {per_minute} requests per minute exceeded; retry in {res.reset_after_s} s",
            retry_after=res.reset_after_s,
            headers=headers,
        )


def _authorize(
    conn: Connection,
    st: AppState,
    request: Request,
    response: Response,
    key_hash: str,
    needed: frozenset[str],
    count_daily: bool,
    now: datetime,
) -> Principal:
    path: str = request.scope["path"]
    principal = service.authenticate(conn, st.settings, key_hash, now)
    if path.startswith("/api/v1/"):
        # the account's plan sets the per-minute limit; counted by the key's hash (never the raw key)
        _per_minute_limit(request, response, st, key_hash[:32], principal.plan.per_minute)
    missing = needed - principal.scopes
    if missing:
        raise Forbidden(
            f"this API key lacks the scope(s) {', '.join(sorted(missing))} needed for "
            f"{request.method} {path}; create a key with them",
        )
    if count_daily:
        used, limit = service.count_daily_call(conn, principal, now)
        if limit is not None and used is not None:
            wait = service.seconds_to_midnight(now)
            headers = {
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": str(max(0, limit - used)),
                "RateLimit-Reset": str(wait),
                "RateLimit-Policy": f'"daily";q={limit};w=86400',
                "RateLimit": f'"daily";r={max(0, limit - used)};t={wait}',
            }
            request.state.ratelimit_headers = headers
            response.headers.update(headers)
    request.state.principal = principal
    return principal


def _ready_and_authorize(conn: Connection, *args: Any) -> Principal:
    """:func:`_authorize` as the unit's first worker-thread step: a PostgreSQL lane's savepoint switch rides along."""
    ready(conn)
    return _authorize(conn, *args)


def authenticated(
    *scopes: str, daily_quota: bool | None = None, hot_rows: bool = False
) -> Callable[..., AsyncIterator[Tx]]:
    """Dependency factory: authenticate by API key, require ``scopes``, count the call.

    ``/v1/*`` calls count against the plan's daily call quota (seed 000) unless ``daily_quota=False``;
    ``/api/v1/*`` calls are limited to the plan's requests per minute per key (seed 001).
    The unit of work waits for the database on the event loop, never in a worker thread
    (see infra/db/unit_of_work.py). ``hot_rows=True`` (the ingest routes and ``/route``) lets a SQLite group
    commit read the key row, the usage counters, the audit chain head and inference's daily rollup once per
    batch and write them once (``unit_of_work.hot_rows``): only for routes that touch those rows through
    ``accounts.service``, ``audit.service`` and ``inference.repository`` alone.
    """

    needed = frozenset(scopes)
    for s in needed:
        if s not in service.ALL_SCOPES:
            raise ValueError(f"unknown scope {s!r}")

    @asynccontextmanager
    async def open_tx(request: Request, response: Response) -> AsyncIterator[Tx]:
        """The unit of work of one authenticated request (the dependency below, and the compiled
        routes of ``infra/fastpath.py``, which call it without FastAPI's dependency solving)."""
        st = app_state(request)
        key = _extract_key(request)
        service.check_key_format(key)
        key_hash = hash_api_key(key, st.secret)
        path: str = request.scope["path"]
        count_daily = daily_quota if daily_quota is not None else path.startswith("/v1/")
        now = st.clock.now()
        async with st.db.units.unit(hot_rows, ready_in_thread=True) as conn:
            args = (conn, st, request, response, key_hash, needed, count_daily, now)
            if st.db.is_sqlite:
                # microseconds of work on a connection this request holds alone: no thread hop
                principal = _authorize(*args)
            else:
                principal = await run_blocking(conn, _ready_and_authorize, *args)
            yield Tx(conn, principal, now, st)

    # Headers are read directly (FastAPI's security classes cost a dependency each per request);
    # app.py declares both schemes in OpenAPI for every route carrying this marker.
    async def dependency(request: Request, response: Response) -> AsyncIterator[Tx]:
        async with open_tx(request, response) as tx:
            yield tx

    dependency.pm_open_tx = open_tx  # type: ignore[attr-defined]
    dependency.pm_auth_scopes = sorted(needed)  # type: ignore[attr-defined]
    return dependency


async def ip_rate_limit(request: Request, response: Response) -> None:
    """60 requests/minute per client IP (seed 003) on the public calculator."""
    st = app_state(request)
    ip = request.client.host if request.client else "unknown"
    per_minute = st.settings.plan(st.settings.default_plan).per_minute
    _per_minute_limit(request, response, st, ip, per_minute, kind="ip")


def Auth(*scopes: str, daily_quota: bool | None = None, hot_rows: bool = False) -> Any:
    """``tx: Tx = Auth("report:write")``: authenticated, scoped, counted, one transaction
    (``hot_rows``: see :func:`authenticated`)."""
    return Depends(authenticated(*scopes, daily_quota=daily_quota, hot_rows=hot_rows), scope="function")


def account_service(conn: HTTPConnection) -> service.AccountService:
    """The account service the composition root built (``powermeter.composition``)."""
    accounts: service.AccountService = conn.app.state.services.accounts
    return accounts


async def _account_service(conn: HTTPConnection) -> service.AccountService:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return account_service(conn)


Accounts = Annotated[service.AccountService, Depends(_account_service)]


def idempotency_scope(db: Database, secret: str) -> KeyScope:
    """For the idempotency middleware (wired by the composition root): ``(refusal, scope)`` of a request's
    API key, where the refusal is ``(status, code, slug, detail)`` of a missing, malformed, unknown or
    revoked key and the scope is ``key:<id>``."""

    async def scope_of(headers: Mapping[str, str]) -> tuple[Refusal | None, str | None]:
        try:
            key = extract_key(headers)
            service.check_key_format(key)
        except ApiError as exc:
            return (exc.status, exc.code, exc.slug, exc.detail), None
        key_hash = hash_api_key(key, secret)

        def lookup() -> Any:
            with db.connect() as conn:
                return repo.find_key_by_hash(conn, key_hash)

        row = await anyio.to_thread.run_sync(lookup)
        if row is None or row.revoked_at is not None:
            return (401, "INVALID_API_KEY", "invalid_api_key", "API key is unknown or has been revoked"), None
        return None, f"key:{row.id}"

    return scope_of
