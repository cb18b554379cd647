"""One error hierarchy, rendered in the shape of each API family's seed document.

* ``/v1/*``, ``/route`` and everything else: ``{"detail", "error_code", "timestamp"}`` (seed 000).
* ``/api/v1/*`` and ``/calc/api/*``: ``{"error": ..., ...}`` (seeds 001 and 003).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from powermeter.infra.clock import SystemClock, utc_iso
from powermeter.infra.db.faults import DATABASE_ERRORS, Fault, TransactionAborted, classify
from powermeter.infra.responses import FastJSONResponse
from powermeter.infra.validation import CONTROL_MESSAGE, NO_CONTROL_PATTERN

log = logging.getLogger("powermeter.errors")

Family = Literal["v1", "calc"]


class ApiError(Exception):
    """Base of every error a client may see. ``code`` is the ``error_code`` of the v1 family,
    ``slug`` the ``error`` of the calc/devices family."""

    status: int = 400
    code: str = "BAD_REQUEST"
    slug: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        slug: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if slug is not None:
            self.slug = slug
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})


class BadRequest(ApiError):
    status, code, slug = 400, "BAD_REQUEST", "bad_request"


class ValidationFailed(ApiError):
    status, code, slug = 400, "VALIDATION_ERROR", "invalid_request"

    def __init__(self, errors: Sequence[Mapping[str, Any]], detail: str | None = None) -> None:
        msg = detail or "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        super().__init__(msg, extra={"errors": [dict(e) for e in errors]})


class Unauthorized(ApiError):
    status, code, slug = 401, "INVALID_API_KEY", "invalid_api_key"


class Forbidden(ApiError):
    status, code, slug = 403, "INSUFFICIENT_SCOPE", "insufficient_scope"


class NotFound(ApiError):
    status, code, slug = 404, "NOT_FOUND", "not_found"


class Conflict(ApiError):
    status, code, slug = 409, "CONFLICT", "conflict"


class Unprocessable(ApiError):
    status, code, slug = 422, "UNPROCESSABLE", "unprocessable"


class RateLimited(ApiError):
    status, code, slug = 429, "RATE_LIMIT_EXCEEDED", "rate_limited"

    def __init__(
        self, detail: str, *, retry_after: int, headers: Mapping[str, str] | None = None, code: str | None = None
    ) -> None:
        h = {"Retry-After": str(retry_after)}
        h.update(headers or {})
        super().__init__(detail, code=code, headers=h, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    """A dependency is down (503) or out of space (507); ``Retry-After`` says when to try again."""

    status, code, slug = 503, "SERVICE_UNAVAILABLE", "service_unavailable"

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int,
        code: str | None = None,
        slug: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(
            detail,
            code=code,
            slug=slug,
            status=status,
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after": retry_after},
        )
        self.retry_after = retry_after


class RateLimitUnavailable(ServiceUnavailable):
    """The rate-limit store is down and the limits fail closed (``POWERMETER_RATELIMIT_FAIL_CLOSED``)."""

    status, code, slug = 503, "RATE_LIMIT_UNAVAILABLE", "rate_limit_unavailable"


# exception types that may stand for a database outage (the rest are bugs: 500)
OUTAGE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, TransactionAborted)


def family_of(path: str) -> Family:
    if path.startswith(("/api/v1/", "/calc/")):
        return "calc"
    return "v1"


def render(request: Request, err: ApiError) -> FastJSONResponse:
    fam = family_of(request.url.path)
    body: dict[str, Any]
    if fam == "calc":
        if err.status == 400:
            # seed 003: { "error": "..." } naming what is wrong with the input
            body = {"error": err.detail}
            body.update(err.extra)
        else:
            body = {"error": err.slug}
            body.update(err.extra)
            if err.status not in (401, 404, 429):
                body.setdefault("message", err.detail)
    else:
        clock = getattr(request.app.state, "clock", None) or SystemClock()
        body = {"detail": err.detail, "error_code": err.code, "timestamp": utc_iso(clock.now())}
        body.update(err.extra)
    headers = dict(err.headers)
    if err.status == 401:
        # RFC 9110 §11.6.1: a 401 names the scheme to use (RFC 6750 bearer tokens; X-API-Key also works)
        headers.setdefault("WWW-Authenticate", 'Bearer realm="powermeter"')
    extra_headers = getattr(request.state, "ratelimit_headers", None)
    if extra_headers:
        for k, v in extra_headers.items():
            headers.setdefault(k, v)
    return FastJSONResponse(body, status_code=err.status, headers=headers)


def _loc_to_field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        if p.isdigit():
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for e in exc.errors():
        loc = e.get("loc", ())
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "value_error" and msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e.get("type") == "missing":
            msg = "field required"
        elif e.get("type") == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == NO_CONTROL_PATTERN:
            msg = CONTROL_MESSAGE
        elif e.get("type") == "json_invalid":
            msg = "request body is not valid JSON: " + str(e.get("ctx", {}).get("error", ""))
        errors.append({"field": _loc_to_field(loc), "message": msg})
    return errors


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> FastJSONResponse:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        return render(request, ValidationFailed(validation_errors(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        mapping: dict[int, type[ApiError]] = {404: NotFound, 401: Unauthorized, 403: Forbidden}
        cls = mapping.get(exc.status_code, ApiError)
        detail = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            detail = f"no route for {request.method} {request.url.path}"
        err = cls(detail, status=exc.status_code)
        if exc.status_code == 405:
            err.code, err.slug = "METHOD_NOT_ALLOWED", "method_not_allowed"
        elif exc.status_code == 413:
            err.code, err.slug = "PAYLOAD_TOO_LARGE", "payload_too_large"
            limit = getattr(exc, "limit", None)
            if limit is not None:
                err.extra["limit_bytes"] = limit
        return render(request, err)

    async def _database(request: Request, exc: Exception) -> FastJSONResponse:
        return await _unhandled(request, exc)

    # a database outage is a 503/507 with Retry-After, not a 500 (infra/db/faults.py)
    for exc_type in OUTAGE_ERRORS:
        app.add_exception_handler(exc_type, _database)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> FastJSONResponse:
        if isinstance(exc, ApiError):  # raised outside the routes (a middleware, a mounted app)
            return render(request, exc)
        outage = outage_error(request, exc)
        if outage is not None:
            return render(request, outage)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(
            request,
            ApiError(
                "internal error; the incident was logged", status=500, code="INTERNAL_ERROR", slug="internal_error"
            ),
        )


_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
LOG_EVERY_S = 10.0  # one log line per cause per process at most this often (the metric counts all)


def outage_error(request: Request, exc: BaseException) -> ServiceUnavailable | None:
    """The 503/507 to answer if ``exc`` is a database outage (counted and logged), else ``None``."""
    st = getattr(request.app.state, "pm", None)
    fault = st.db.classify(exc) if st is not None else classify(exc)
    return database_fault(request, exc, fault) if fault is not None else None


def database_fault(request: Request, exc: BaseException, fault: Fault) -> ServiceUnavailable:
    """Count and log (rate-limited) a database outage; the error to render for it."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.inc("powermeter_db_unavailable_total", cause=fault.cause, status=str(fault.status))
    now = time.monotonic()
    if now - _last_logged.get(fault.cause, -LOG_EVERY_S) >= LOG_EVERY_S:
        _last_logged[fault.cause] = now
        skipped = _suppressed.pop(fault.cause, 0)
        root = exc.cause if isinstance(exc, TransactionAborted) else exc
        first_line = str(getattr(root, "orig", None) or root).strip().splitlines()[:1]
        log.warning(
            "database %s: %s %s answered %d %s (%s: %s)%s",
            fault.cause,
            request.method,
            request.url.path,
            fault.status,
            fault.code,
            type(root).__name__,
            first_line[0] if first_line else "",
            f"; {skipped} more since the last line" if skipped else "",
        )
    else:
        _suppressed[fault.cause] = _suppressed.get(fault.cause, 0) + 1
    return ServiceUnavailable(
        fault.detail, retry_after=fault.retry_after, code=fault.code, slug=fault.slug, status=fault.status
    )


class V1Error(BaseModel):
    detail: str
    error_code: str
    timestamp: str


class CalcError(BaseModel):
    error: str


_DESCRIPTIONS = {
    400: "Invalid input: the body names each field and the problem",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key lacks the scope this route needs",
    404: "Not found",
    409: "Conflict with stored data",
    422: "Idempotency-Key reused with a different request body",
    429: "Rate limit, daily quota or usage cap exceeded; see Retry-After",
    500: "Internal error",
    503: "A dependency is unavailable (database, or the rate-limit store when fail-closed); see Retry-After",
    507: "The database's disk is full; nothing was stored; see Retry-After",
}


def error_responses(family: Family, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring a family's error shape."""
    model = V1Error if family == "v1" else CalcError
    codes = statuses or (400, 401, 403, 404, 422, 429, 500)
    return {s: {"model": model, "description": _DESCRIPTIONS.get(s, "Error")} for s in codes}


def declare_outage_responses(path: str, op: dict[str, Any], *, uses_database: bool) -> None:
    """Declare in OpenAPI the 503/507 an operation answers when a dependency is down
    (docs/operations.md): the database for authenticated operations, the rate-limit store when the
    limits fail closed for the per-minute limited families."""
    fam = family_of(path)
    ref = {"$ref": f"#/components/schemas/{'CalcError' if fam == 'calc' else 'V1Error'}"}
    statuses = [503, 507] if uses_database else ([503] if fam == "calc" else [])
    responses = op.setdefault("responses", {})
    for status in statuses:
        responses.setdefault(
            str(status),
            {
                "description": _DESCRIPTIONS[status] + " (docs/operations.md)",
                "headers": {
                    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
                },
                "content": {"application/json": {"schema": ref}},
            },
        )


class OutageMiddleware:
    """Turns a database outage raised *outside* the routes (by a middleware such as idempotency's)
    into its 503/507, as the exception handlers do inside them; without it Starlette's last-resort
    handler would answer but also re-raise, logging a traceback per request during an outage."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except OUTAGE_ERRORS as exc:
            if started:
                raise
            request = Request(scope)
            outage = outage_error(request, exc)
            if outage is None:
                raise
            await render(request, outage)(scope, receive, send)
