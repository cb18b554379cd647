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
