"""How routes and dashboard pages receive the device services the composition root built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.devices.service import Devices


def devices_service(conn: HTTPConnection) -> Devices:
    devices: Devices = conn.app.state.services.devices
    return devices


async def _devices_service(conn: HTTPConnection) -> Devices:
    # async: FastAPI calls it inline (a plain ``def`` provider costs a thread-pool hop per request)
    return devices_service(conn)


DevicesDep = Annotated[Devices, Depends(_devices_service)]
