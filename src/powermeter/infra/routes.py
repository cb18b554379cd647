"""Walking the app's routes (OpenAPI post-processing and the body/idempotency middleware both need it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def api_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``APIRoute`` with its full path, including those of included routers (FastAPI ≥ 0.16x
    keeps those nested)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path_format, route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            ctx = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + str(getattr(ctx, "prefix", "") or ""))


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTable:
    """The router's dispatch with a dictionary in front: a request for a path without parameters goes
    straight to the route FastAPI would pick, instead of trying every route before it in turn (the
    linear scan costs ~1.5 µs per route tried: ~60 µs for a route near the end of ~45).

    Correctness: the route for ``(method, path)`` is found once by the router's own rule (the first
    route in order that fully matches), so a parameterised route listed earlier still wins; it is kept
    only when that route is an ``APIRoute`` without path parameters, and found again whenever the
    route list changes. Everything else (parameters, mounts, 404/405, redirects, a ``root_path``)
    goes through the router unchanged."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.inner = router.middleware_stack
        self._count = -1
        self._static: frozenset[str] = frozenset()
        self._found: dict[tuple[str, str], Any] = {}

    def _refresh(self) -> None:
        from fastapi.routing import APIRoute

        self._count = len(self.router.routes)
        self._static = frozenset(
            r.path for r in self.router.routes if isinstance(r, APIRoute) and not r.param_convertors
        )
        self._found = {}

    def _resolve(self, method: str, path: str) -> Any:
        from fastapi.routing import APIRoute
        from starlette.routing import Match

        probe = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        chosen = None
        for route in self.router.routes:
            match, _ = route.matches(probe)
            if match == Match.FULL:
                if isinstance(route, APIRoute) and not route.param_convertors:
                    chosen = route
                break
        self._found[(method, path)] = chosen
        return chosen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            if len(self.router.routes) != self._count:
                self._refresh()
            path, method = scope["path"], scope["method"]
            if path in self._static and method in _METHODS:
                route = self._found.get((method, path), _MISSING)
                if route is _MISSING:
                    route = self._resolve(method, path)
                if route is not None:
                    from starlette.routing import Match

                    match, child = route.matches(scope)
                    if match == Match.FULL and "fastapi" not in child:
                        scope.setdefault("router", self.router)
                        scope.update(child)
                        await route.handle(scope, receive, send)
                        return
        await self.inner(scope, receive, send)


_MISSING = object()


def install_route_table(router: Any) -> None:
    """Put a :class:`RouteTable` in front of ``router`` (after its routes are added; a router with
    form limits or host routes keeps its own dispatch)."""
    from starlette.routing import Host

    if getattr(router, "form_limits", None) or any(isinstance(r, Host) for r in router.routes):
        return
    router.middleware_stack = RouteTable(router)
