"""How routes receive the routing service the composition root built (``powermeter.composition``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.routing.service import RoutingService


def routing_service(conn: HTTPConnection) -> RoutingService:
    svc: RoutingService = conn.app.state.services.routing
    return svc


async def _routing_service(conn: HTTPConnection) -> RoutingService:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return routing_service(conn)


Routing = Annotated[RoutingService, Depends(_routing_service)]
