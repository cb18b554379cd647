"""How routes and dashboard pages receive the tariff data the composition root built
(``powermeter.composition``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.cost.service import RatesProvider


def rates_provider(conn: HTTPConnection) -> RatesProvider:
    rates: RatesProvider = conn.app.state.services.rates
    return rates


async def _rates_provider(conn: HTTPConnection) -> RatesProvider:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return rates_provider(conn)


Rates = Annotated[RatesProvider, Depends(_rates_provider)]
