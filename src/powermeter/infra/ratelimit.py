"""Short-window rate limits (``limits`` library): memory storage per process, or Redis shared by
every worker and machine when ``POWERMETER_REDIS_URL`` is set."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter


@dataclass(frozen=True, slots=True)
class LimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int

    def headers(self, policy: str) -> dict[str, str]:
        window = policy.split(";w=")[-1] if ";w=" in policy else ""
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after_s),
            "RateLimit-Policy": policy,
        }
        if window:
            name = policy.split(";", 1)[0]
            h["RateLimit"] = f"{name};r={self.remaining};t={self.reset_after_s}"
        return h


class RateLimiter:
    def __init__(self, redis_url: str | None = None, key_prefix: str = "powermeter") -> None:
        self.storage: Storage
        if redis_url:
            self.storage = RedisStorage(redis_url, key_prefix=key_prefix)
        else:
            self.storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, spec: str) -> RateLimitItem:
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = parse(spec)
        return item

    def hit(self, spec: str, *identifiers: str) -> LimitResult:
        item = self._item(spec)
        allowed = self._limiter.hit(item, *identifiers)
        stats = self._limiter.get_window_stats(item, *identifiers)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return LimitResult(allowed, item.amount, max(0, stats.remaining), reset)

    def ping(self) -> None:
        if not self.storage.check():
            raise ConnectionError("rate-limit storage is not reachable")

    def reset(self) -> None:
        self.storage.reset()
