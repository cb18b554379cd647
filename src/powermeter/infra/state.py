"""What the app factory builds once and every request shares (``app.state.pm``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from powermeter.infra.clock import Clock
from powermeter.infra.db import Database
from powermeter.infra.ratelimit import RateLimiter
from powermeter.infra.security import Signer
from powermeter.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    clock: Clock
    signer: Signer
    secret: str
    limiter: RateLimiter
    extras: dict[str, Any] = field(default_factory=dict)  # capability-owned singletons (providers…)


def app_state(conn: HTTPConnection) -> AppState:
    st: AppState = conn.app.state.pm
    return st
