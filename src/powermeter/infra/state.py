"""The shared core every request sees (``app.state.pm``): settings, database, clock, signer, rate limiter.
Built by the composition root (``powermeter.composition.build_core``); the capabilities' services live in
``powermeter.composition.Services`` (``app.state.services``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from powermeter.infra.clock import Clock
from powermeter.infra.db import Database
from powermeter.infra.ratelimit import RateLimiter
from powermeter.infra.security import Signer
from powermeter.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    db: Database
    clock: Clock
    signer: Signer
    secret: str
    limiter: RateLimiter


def app_state(conn: HTTPConnection) -> AppState:
    st: AppState = conn.app.state.pm
    return st
