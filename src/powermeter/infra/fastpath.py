"""Compiled routes: the API's JSON routes served without FastAPI's per-request machinery.

Why: on a hot route such as ``POST /v1/inference`` about a third of the CPU went to the framework, not
the work: Starlette's and FastAPI's middleware stack (error, telemetry, body-limit, exception and exit-
stack middlewares), our three pure-ASGI middlewares (observability, outage, idempotency), FastAPI's
dependency solver (it inspects every dependency's signature per request and wraps each ``yield``
dependency in context managers) and its body handling. Profiled with py-spy under load (see
docs/performance.md, "Hot routes").

What: at start-up every ``APIRoute`` whose shape allows it is compiled into one plain ``async``
function. A route qualifies when it has no path, query, header or cookie parameters, at most one body
parameter (a Pydantic model), and its other parameters are the request, the sub-response, the service
providers of each capability's ``deps.py`` (async, taking only the connection) and at most one
``Auth(...)`` unit of work; its endpoint is ``async def`` and annotated to return a ``Response``. The
route stays registered with FastAPI as before: same OpenAPI document, same matching order, and the same
code path for everything the compiled function does not take.

Behaviour is the FastAPI path's by construction:

- A request the compiled function does not take goes down the ordinary stack untouched, before
  anything is read: an ``Idempotency-Key``, a body of unknown length or over 64 KiB (those are
  authenticated before they are read, ``infra/idempotency.py``), a content type other than JSON, a
  ``root_path``, dependency overrides, or middlewares added after start-up.
- A body that does not parse or validate is handed, unchanged, to the ordinary stack, which produces
  the error it always did (its 401 first when the key is also wrong; its 400 naming the field). Nothing
  has happened yet at that point: the compiled path validates before it authenticates.
- Errors raised by the work are rendered by the app's own exception handlers (the family's error
  shape, 503/507 for an outage, a logged 500), found by the exception's class as Starlette does.
- The request id, ``RateLimit-*`` headers, the request log line and the metrics are those of the
  observability middleware (same function, same labels).
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from powermeter.infra.idempotency import PREAUTH_BYTES, body_limit
from powermeter.infra.observability import Metrics, log_request

log = logging.getLogger("powermeter")

Handler = Callable[[Request, bytes], Awaitable[Response | None]]
_FALLBACK = None  # a handler's answer when the ordinary stack must take the request


class CompiledRoute:
    __slots__ = ("handler", "route", "template")

    def __init__(self, route: Any, handler: Handler) -> None:
        self.route = route
        self.template: str = route.path
        self.handler = handler


def _returns_response(endpoint: Any) -> bool:
    try:
        hints = get_type_hints(endpoint)
    except Exception:
        return False
    ret = hints.get("return")
    # a streamed or file answer has no ``body`` to send in one message: those keep FastAPI's path
    return isinstance(ret, type) and issubclass(ret, Response) and not issubclass(ret, StreamingResponse | FileResponse)


def compile_route(route: Any) -> CompiledRoute | None:
    """The compiled handler of ``route``, or ``None`` when its shape needs FastAPI's machinery."""
    dep = route.dependant
    endpoint = dep.call
    if not inspect.iscoroutinefunction(endpoint) or not _returns_response(endpoint):
        return None
    if dep.path_params or dep.query_params or dep.header_params or dep.cookie_params:
        return None
    if dep.background_tasks_param_name or dep.websocket_param_name or dep.security_scopes_param_name:
        return None
    if route.param_convertors:
        return None
    body_name: str | None = None
    model: type[BaseModel] | None = None
    if dep.body_params:
        if len(dep.body_params) != 1:
            return None
        field = dep.body_params[0]
        annotation = getattr(field, "type_", None) or getattr(getattr(field, "field_info", None), "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        if getattr(field.field_info, "embed", False) or field.alias != field.name:
            return None
        body_name, model = field.name, annotation
    providers: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
    auth: tuple[str, Callable[[Request, Response], Any]] | None = None
    for sub in dep.dependencies:
        if sub.name is None:
            return None  # a dependency without a parameter (``dependencies=[...]``)
        opener = getattr(sub.call, "pm_open_tx", None)
        if opener is not None:
            if auth is not None:
                return None
            auth = (sub.name, opener)
            continue
        if sub.dependencies or sub.body_params or sub.query_params or sub.header_params or sub.path_params:
            return None
        if sub.cookie_params or sub.response_param_name or sub.background_tasks_param_name:
            return None
        if not inspect.iscoroutinefunction(sub.call) or len(inspect.signature(sub.call).parameters) != 1:
            return None
        if (sub.request_param_name or sub.http_connection_param_name) is None:
            return None
        providers.append((sub.name, sub.call))
    request_name = dep.request_param_name or dep.http_connection_param_name
    response_name = dep.response_param_name

    async def handler(request: Request, body: bytes) -> Response | None:
        kwargs: dict[str, Any] = {}
        if model is not None:
            assert body_name is not None  # noqa: S101 (set together)
            try:
                # python-mode validation of the decoded JSON, as FastAPI does (json.loads, then the
                # model): anything that fails here is refused by the ordinary stack, its way
                kwargs[body_name] = model.model_validate(orjson.loads(body))
            except Exception:
                return _FALLBACK
        request._body = body
        if request_name is not None:
            kwargs[request_name] = request
        sub_response = Response()  # as FastAPI's: headers a dependency or the route may set
        del sub_response.headers["content-length"]
        if response_name is not None:
            kwargs[response_name] = sub_response
        for name, call in providers:
            kwargs[name] = await call(request)
        if auth is None:
            result: Response = await endpoint(**kwargs)
            return result
        name, opener = auth
        async with opener(request, sub_response) as tx:
            kwargs[name] = tx
            result = await endpoint(**kwargs)
        return result

    return CompiledRoute(route, handler)


class FastPath:
    """The compiled routes of an app, by ``(method, path)``, and the edge that serves them."""

    def __init__(self, app: Any, metrics: Metrics, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        self.table: dict[tuple[str, str], CompiledRoute] = {}
        self.served = 0  # requests answered by a compiled handler (the tests check the path is taken)
        self._routes = -1
        self._middlewares = len(app.user_middleware)

    def build(self) -> None:
        """Compile every eligible route (again when the route list changed)."""
        from fastapi.routing import APIRoute
        from starlette.routing import Match

        routes = self.app.router.routes
        self._routes = len(routes)
        table: dict[tuple[str, str], CompiledRoute] = {}
        for route in routes:
            if not isinstance(route, APIRoute) or route.param_convertors:
                continue
            for method in sorted(route.methods or ()):
                if method == "HEAD" or (method, route.path) in table:
                    continue
                # the route FastAPI itself would pick for this method and path: the first that matches
                probe = {"type": "http", "method": method, "path": route.path, "root_path": "", "headers": []}
                chosen = None
                for r in routes:
                    match, _ = r.matches(probe)
                    if match == Match.FULL:
                        chosen = r
                        break
                if chosen is not route:
                    continue
                compiled = compile_route(route)
                if compiled is not None:
                    table[(method, compiled.template)] = compiled
        self.table = table

    def lookup(self, scope: Scope) -> CompiledRoute | None:
        app = self.app
        if len(app.router.routes) != self._routes:
            self.build()
        compiled = self.table.get((scope["method"], scope["path"]))
        if compiled is None or scope.get("root_path") or app.dependency_overrides:
            return None
        if len(app.user_middleware) != self._middlewares:
            return None  # a middleware added after start-up must see every request
        return compiled

    async def serve(self, compiled: CompiledRoute, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve the request, or return ``False`` (having read nothing) for the ordinary stack."""
        length = -1
        json_type = False
        rid = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = int(v) if v.isdigit() else -2
            elif k == b"content-type":
                media = v.split(b";", 1)[0].strip().lower()
                json_type = media == b"application/json"
            elif k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
            elif k in (b"idempotency-key", b"transfer-encoding"):
                return False
        method = scope["method"]
        if method in ("POST", "PUT", "PATCH"):
            st = self.app.state.pm
            if length < 0 or length > PREAUTH_BYTES or length > body_limit(st, scope["path"]):
                return False
            if compiled.route.dependant.body_params and not json_type:
                return False
        elif length > 0:
            return False
        start = time.perf_counter()
        body = b""
        if length > 0:
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return True
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        scope["route"] = compiled.route
        scope["endpoint"] = compiled.route.endpoint
        request = Request(scope, replay)
        status = 500
        observed = True  # False when the ordinary stack answers (its middleware counts and logs it)
        try:
            try:
                response = await compiled.handler(request, body)
            except Exception as exc:
                response = await self._render(request, exc)
            if response is None:  # not valid here: the ordinary stack answers, with its own error
                del scope["route"], scope["endpoint"]
                observed = False
                await self.app.handle_ordinary(scope, replay, send)
                return True
            status = response.status_code
            self.served += 1
            rid = rid or secrets.token_hex(8)
            headers = [*response.raw_headers, (b"x-request-id", rid.encode())]
            state = scope.get("state")
            limits = state.get("ratelimit_headers") if isinstance(state, dict) else None
            if limits:
                have = {k for k, _ in response.raw_headers}
                headers.extend(
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in limits.items()
                    if k.lower().encode("latin-1") not in have
                )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": response.body})
            if response.background is not None:
                await response.background()
        finally:
            if observed:
                elapsed = time.perf_counter() - start
                self.metrics.observe(method, compiled.template, status, elapsed)
                if self.log_requests:
                    log_request(scope, rid or "-", compiled.template, status, elapsed)
        return True

    async def _render(self, request: Request, exc: Exception) -> Response:
        """The response the app's exception handlers give ``exc`` (looked up by class, as Starlette)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                if not isinstance(result, Response):  # pragma: no cover - our handlers return responses
                    raise exc
                return result
        raise exc  # pragma: no cover - ``Exception`` has a handler (infra/errors.py)
