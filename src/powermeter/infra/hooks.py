"""Extension points of the app's lifespan, filled by capability modules at import time.

* ``STARTUP_HOOKS``: ``fn(state)`` run once before the first request (dataset warm-up, checkpoints).
* ``BACKGROUND_TASKS``: ``async fn(state)`` run for the app's lifetime, cancelled at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from powermeter.infra.state import AppState

STARTUP_HOOKS: list[Callable[[AppState], None]] = []
BACKGROUND_TASKS: list[Callable[[AppState], Coroutine[Any, Any, None]]] = []
