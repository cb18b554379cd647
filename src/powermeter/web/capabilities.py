"""Adapters over the other capabilities' services, each returning ``None`` when the capability has
not landed (its module or function is missing), so its page can say "not available yet"."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from types import ModuleType
from typing import Any

from powermeter.web.deps import Page


@lru_cache(maxsize=64)
def optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise


def optional_func(module: str, attr: str) -> Callable[..., Any] | None:
    mod = optional_module(module)
    fn = getattr(mod, attr, None) if mod is not None else None
    return fn if callable(fn) else None


def recent_receipts(page: Page, limit: int = 5) -> list[dict[str, Any]] | None:
    return None
