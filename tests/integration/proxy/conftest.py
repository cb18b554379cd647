"""The proxy tests run against the same tiny upstream processes as the routing SDK tests."""

from __future__ import annotations

from tests.integration.routing.conftest import upstreams

__all__ = ["upstreams"]
