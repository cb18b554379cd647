"""The dashboard sub-application: its pages, static files, security headers and error pages."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from powermeter.infra.errors import OUTAGE_ERRORS, ApiError, outage_error
from powermeter.web.deps import CsrfRefused, LoginRequired
from powermeter.web.render import STATIC_DIR, render

log = logging.getLogger("powermeter.web")

# Scripts only from this origin; styles too, plus inline style attributes (Chartist sizes its labels
# with them). No frames, no plugins, forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """Adds the security headers to every dashboard response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = "/static/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if not is_static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if not is_static and b"vary" not in names:
                    # pages answer htmx requests with a fragment, anything else with the whole page
                    headers.append((b"vary", b"HX-Request, HX-History-Restore-Request"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class VersionedStatic(StaticFiles):
    """Static files; a URL carrying ``?v=<hash>`` is immutable and cached for a year."""

    async def get_response(self, path: str, scope: MutableMapping[str, Any]) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        else:
            response.headers.setdefault("cache-control", "public, max-age=300")
        return response


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def build(parent: FastAPI) -> FastAPI:
    from powermeter.web.router import router

    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="powermeter dashboard")
    sub.state.pm = parent.state.pm
    sub.state.services = parent.state.services  # the same services as the API (powermeter.composition)
    sub.state.clock = parent.state.clock
    sub.state.metrics = getattr(parent.state, "metrics", None)
    sub.include_router(router)
    sub.mount("/static", VersionedStatic(directory=str(STATIC_DIR)), name="static")

    @sub.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.method != "GET":
            target = "/dashboard/"
        from urllib.parse import quote

        url = f"/dashboard/login?next={quote(target, safe='/')}"
        if _is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    @sub.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        log.info("refused a dashboard form post: %s", exc.reason)
        return render(
            request,
            "error.html",
            {
                "page_title": "Form refused",
                "status": 403,
                "message": "This form could not be accepted: it has expired or it was not sent from this "
                "site. Go back, reload the page and try again.",
                "reason": exc.reason,
            },
            status_code=403,
        )

    @sub.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return render(
            request,
            "error.html",
            {"page_title": "Error", "status": exc.status, "message": exc.detail, "reason": None},
            status_code=exc.status,
            headers=exc.headers,
        )

    async def _outage(request: Request, exc: Exception) -> Response:
        # a database outage is a page saying so (503/507 with Retry-After), not a 500 (docs/operations.md)
        err = outage_error(request, exc)
        if err is None:
            raise exc
        return await _api_error(request, err)

    for outage in OUTAGE_ERRORS:
        sub.add_exception_handler(outage, _outage)

    @sub.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return render(
            request,
            "error.html",
            {
                "page_title": "Not found" if exc.status_code == 404 else "Error",
                "status": exc.status_code,
                "message": message,
                "reason": None,
            },
            status_code=exc.status_code,
        )

    @sub.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(
            ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")) for e in exc.errors()
        )
        return render(
            request,
            "error.html",
            {
                "page_title": "Invalid input",
                "status": 400,
                "message": f"Some of what was sent is not valid ({fields}). Go back and correct it.",
                "reason": None,
            },
            status_code=400,
        )

    sub.add_middleware(SecurityHeaders)
    return sub
