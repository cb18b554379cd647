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


Inference = Annotated[Engine, Depends(inference_engine)]
