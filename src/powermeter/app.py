"""The ASGI application: ``create_app()`` builds it, its lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from powermeter import __version__
from powermeter.accounts.deps import idempotency_scope
from powermeter.composition import Services, build_core, build_services
from powermeter.infra.clock import Clock
from powermeter.infra.docs import install_docs
from powermeter.infra.errors import OutageMiddleware, declare_outage_responses, install_handlers
from powermeter.infra.fastpath import FastPath
from powermeter.infra.idempotency import IdempotencyMiddleware, purge_expired
from powermeter.infra.observability import Metrics, ObservabilityMiddleware
from powermeter.infra.responses import FastJSONResponse
from powermeter.infra.routes import api_routes, install_route_table
from powermeter.settings import Settings

log = logging.getLogger("powermeter")


class PowermeterApp(FastAPI):
    """FastAPI with the compiled routes in front (``infra/fastpath.py``): a request to one of them is
    served by its compiled function; every other request, and any the compiled function declines,
    goes through the ordinary middleware stack."""

    fastpath: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fastpath
        if fast is not None and scope["type"] == "http":
            compiled = fast.lookup(scope)
            if compiled is not None:
                scope["app"] = self
                if await fast.serve(compiled, scope, receive, send):
                    return
        await super().__call__(scope, receive, send)

    async def handle_ordinary(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


API_DESCRIPTION = """
powermeter tells what computing and devices cost in energy (kWh), carbon (gCO2e), water and money,
keeps signed, tamper-evident records of it, and routes work to the cleanest grid.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys start with `pm_live_`).
Every number names its method, constants and data sources; see `docs/methodology.md`.
"""


def _routers() -> list[Any]:
    from powermeter.accounts.router import router as account
    from powermeter.audit.router import router as audit
    from powermeter.cost.bills_router import router as bills
    from powermeter.cost.router import router as cost
    from powermeter.devices.router import router as devices
    from powermeter.inference.router import router as inference
    from powermeter.jobs.router import router as jobs
    from powermeter.reports.router import router as reports
    from powermeter.routing.router import router as routing

    # Matching is linear in FastAPI: the routes with throughput goals come first (/route, /v1/report,
    # /v1/inference, /calc/api/cost), which saves ~3 µs per route skipped.
    return [routing, jobs, inference, cost, devices, account, audit, reports, bills]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_migrations: bool = True,
) -> FastAPI:
    """Build the app: the composition root (``powermeter.composition``) makes every service and wires
    the events; this function adds the HTTP surface (routers, dashboard, middlewares) and the lifespan."""
    settings = settings or Settings()
    state = build_core(settings, clock=clock, run_migrations=run_migrations)
    db = state.db
    metrics = Metrics()
    metrics.collectors.append(state.limiter.metric_lines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db.units.bind()
        services: Services = app.state.services  # as built below (a test may swap in a double first)
        services.startup()
        # Datasets, modules and compiled statements live for the whole process: move them out of
        # the cyclic collector's reach so its full sweeps stay short (a 10,000-job batch allocates
        # enough to trigger one; with ~1M long-lived objects that sweep took ~100 ms).
        gc.collect()
        gc.freeze()
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(t) for t in services.background_tasks()]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            with contextlib.suppress(Exception):
                await db.units.close()
            with contextlib.suppress(Exception):
                purge_expired(state, state.clock.now())
            db.dispose()

    app = PowermeterApp(
        title="powermeter",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served from local assets by install_docs (works offline)
        redoc_url=None,
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
    )
    app.state.pm = state
    app.state.services = build_services(state)  # read by each capability's deps.py
    app.state.clock = state.clock
    app.state.metrics = metrics
    install_handlers(app)
    install_docs(app)

    @app.get(
        "/healthz",
        tags=["operations"],
        operation_id="healthz",
        responses={503: {"description": "A dependency is down; the body names it and why (docs/operations.md)"}},
    )
    def healthz() -> FastJSONResponse:
        checks: dict[str, str] = {"database": db.health()}
        ok = checks["database"] == "ok"
        if settings.redis_url:
            try:
                state.limiter.ping()
                checks["redis"] = "ok"
            except Exception as e:
                ok = False
                policy = "fail closed (503)" if settings.ratelimit_fail_closed else "fail open (per process)"
                checks["redis"] = f"down: {type(e).__name__}; per-minute limits {policy}"
        body = {"status": "ok" if ok else "unavailable", "version": __version__, "checks": checks}
        return FastJSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], operation_id="metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> dict[str, Any]:
        return {
            "service": "powermeter",
            "version": __version__,
            "docs": "/docs",
            "openapi": "/openapi.json",
            "health": "/healthz",
            "dashboard": "/dashboard",
        }

    for r in _routers():
        # The routers carry no router-level dependencies, so their routes join the app's own list
        # directly: FastAPI's nested matching of included routers costs ~4 µs per route tried, the
        # flat list about a quarter of that (the OpenAPI document is identical; a test checks it).
        if r.dependencies:
            app.include_router(r)
        else:
            app.router.routes.extend(r.routes)
    _mount_web(app)
    _install_openapi(app)
    install_route_table(app.router)  # static paths found by a dictionary, not a linear scan

    app.add_middleware(IdempotencyMiddleware, key_scope=idempotency_scope(db, state.secret))
    app.add_middleware(OutageMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, log_requests=settings.log_requests)
    if settings.compiled_routes:
        app.fastpath = FastPath(app, metrics, settings.log_requests)
        app.fastpath.build()
    return app


def _auth_scopes(dependant: Any) -> list[str] | None:
    for d in dependant.dependencies:
        scopes = getattr(d.call, "pm_auth_scopes", None)
        if scopes is not None:
            return list(scopes)
        found = _auth_scopes(d)
        if found is not None:
            return found
    return None


def _install_openapi(app: FastAPI) -> None:
    """Declare the API-key schemes on authenticated operations and drop FastAPI's automatic 422
    (validation errors are 400s in each family's shape, declared by the routes)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        comps = schema.setdefault("components", {})
        comps.setdefault("securitySchemes", {}).update(
            {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer pm_live_…"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        )
        scopes_of: dict[tuple[str, str], list[str]] = {}
        for path, route in api_routes(app.routes):
            scopes = _auth_scopes(route.dependant)
            if scopes is not None:
                for method in route.methods or ():
                    scopes_of[(path, method.lower())] = scopes
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                responses = op["responses"]
                auto = responses.get("422", {})
                ref = str(auto.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", ""))
                if ref.endswith("/HTTPValidationError"):
                    del responses["422"]
                    responses.setdefault("400", {"description": "Invalid input: each field and its problem"})
                if method in ("post", "put", "patch"):  # infra/idempotency.py: the body size limit
                    responses.setdefault("413", {"description": "Body over the size limit, refused before it is read"})
                scopes = scopes_of.get((path, method))
                declare_outage_responses(path, op, uses_database=scopes is not None)
                if scopes is not None:
                    op["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
                    if scopes:
                        op["description"] = (op.get("description") or "") + (
                            f"\n\nRequires an API key with scope(s): {', '.join(scopes)}."
                        )
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _mount_web(app: FastAPI) -> None:
    from powermeter.web import mount

    mount(app)


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory powermeter.app:app_from_env`` (used by ``serve --workers``)."""
    return create_app()
