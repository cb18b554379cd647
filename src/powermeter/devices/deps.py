"""How routes and dashboard pages receive the device services the composition root built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from powermeter.devices.service import Devices


def devices_service(conn: HTTPConnection) -> Devices:
    devices: Devices = conn.app.state.services.devices
    return devices


DevicesDep = Annotated[Devices, Depends(devices_service)]
