"""How routes and dashboard pages receive the inference engine the composition root built
(``powermeter.composition``); nothing here builds anything."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.inference.service import Engine


def inference_engine(conn: HTTPConnection) -> Engine:
    engine: Engine = conn.app.state.services.inference
    return engine


async def _inference_engine(conn: HTTPConnection) -> Engine:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return inference_engine(conn)


Inference = Annotated[Engine, Depends(_inference_engine)]
