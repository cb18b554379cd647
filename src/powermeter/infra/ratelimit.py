"""Short-window rate limits (``limits`` library): memory storage per process, or Redis shared by
every worker and machine when ``POWERMETER_REDIS_URL`` is set.

Redis down (see docs/operations.md): a request never waits on it for more than
``REDIS_CONNECT_TIMEOUT_S`` (connect) or ``REDIS_SOCKET_TIMEOUT_S`` (a command), and never gets a
500 because of it. By default the limits **fail open**: while Redis is unreachable each process
counts in its own memory (so one process still stops a flood; across N processes the effective
limit is up to N times the plan's), every such decision adds to
``powermeter_ratelimit_degraded_total`` and the outage is logged once as a warning. With
``POWERMETER_RATELIMIT_FAIL_CLOSED=true`` they **fail closed**: :class:`RateLimitUnavailable`
(a 503 with ``Retry-After``). Redis is retried with exponential back-off (``BACKOFF_MIN_S`` doubling
to ``BACKOFF_MAX_S``); between tries no request touches it. Daily quotas and kWh caps are not here:
they are counted in the database and stay exact.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from powermeter.infra.errors import RateLimitUnavailable

log = logging.getLogger("powermeter.ratelimit")

REDIS_CONNECT_TIMEOUT_S = 0.05  # a dead or unreachable Redis costs a request at most this to connect
REDIS_SOCKET_TIMEOUT_S = 0.1  # and at most this per command on an open connection that stopped answering
BACKOFF_MIN_S = 0.25  # first pause after a failure before Redis is tried again
BACKOFF_MAX_S = 5.0  # longest pause: a restarted Redis is used again within this


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


def _redis_storage(url: str, key_prefix: str) -> RedisStorage:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        # redis-py retries a failed command 3 times with back-off by default: a request must not
        # wait for that; this module retries Redis itself, between requests
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    return RedisStorage(url, key_prefix=key_prefix, wrap_exceptions=True, **options)


class RateLimiter:
    """Moving-window limits. ``hit(spec, *identifiers)`` counts one request and says if it is allowed."""

    def __init__(
        self, redis_url: str | None = None, key_prefix: str = "powermeter", *, fail_closed: bool = False
    ) -> None:
        self.storage: Storage
        self.shared = bool(redis_url)
        self.fail_closed = fail_closed
        if redis_url:
            self.storage = _redis_storage(redis_url, key_prefix)
        else:
            self.storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self.storage)
        # used while Redis is unreachable (fail open): this process's own counters
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[str, RateLimitItem] = {}
        self._lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time of the first failure of this outage
        self._retry_at = 0.0  # monotonic time before which Redis is not tried
        self._backoff = 0.0
        self.degraded: dict[str, int] = defaultdict(int)  # decisions made without Redis, by limit kind

    def _item(self, spec: str) -> RateLimitItem:
        item = self._items.get(spec)
        if item is None:
            item = self._items[spec] = parse(spec)
        return item

    @property
    def redis_down(self) -> bool:
        return self._down_since is not None

    def hit(self, spec: str, *identifiers: str) -> LimitResult:
        item = self._item(spec)
        if not self.shared or time.monotonic() >= self._retry_at:
            try:
                allowed = self._limiter.hit(item, *identifiers)
                stats = self._limiter.get_window_stats(item, *identifiers)
            except (StorageError, OSError) as e:
                self._failed(e)
            else:
                if self._down_since is not None:
                    self._recovered()
                return _result(allowed, item, stats.reset_time, stats.remaining)
        return self._degraded(item, identifiers)

    def _degraded(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> LimitResult:
        kind = identifiers[0] if identifiers else "-"
        with self._lock:
            self.degraded[kind] += 1
        if self.fail_closed:
            wait = max(1, math.ceil(self._retry_at - time.monotonic()))
            raise RateLimitUnavailable(
                "the rate-limit store (Redis) is unreachable and POWERMETER_RATELIMIT_FAIL_CLOSED is set; "
                f"retry in {wait} s",
                retry_after=wait,
            )
        allowed = self._fallback.hit(item, *identifiers)
        stats = self._fallback.get_window_stats(item, *identifiers)
        return _result(allowed, item, stats.reset_time, stats.remaining)

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            first = self._down_since is None
            if first:
                self._down_since = now
            self._backoff = BACKOFF_MIN_S if first else min(BACKOFF_MAX_S, self._backoff * 2)
            # jitter (±20 %) so the workers of a machine do not all retry at the same instant
            self._retry_at = now + self._backoff * random.uniform(0.8, 1.2)  # noqa: S311 (not a secret)
        if first:
            cause = exc.__cause__ or exc
            log.warning(
                "ratelimit: Redis unreachable (%s: %s); per-minute limits now %s until it answers again "
                "(retrying with back-off up to %.0f s)",
                type(cause).__name__,
                cause,
                "fail closed (503)" if self.fail_closed else "fail open (counted per process)",
                BACKOFF_MAX_S,
            )

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
            self._backoff = 0.0
            self._retry_at = 0.0
        if since is not None:
            log.warning(
                "ratelimit: Redis reachable again after %.1f s; shared limits restored", time.monotonic() - since
            )

    def ping(self) -> None:
        """Raise ``ConnectionError`` if the storage does not answer (a real try, back-off or not)."""
        if not self.storage.check():
            if self.shared:
                self._failed(ConnectionError("PING failed"))
            raise ConnectionError("rate-limit storage is not reachable")
        if self._down_since is not None:
            self._recovered()

    def reset(self) -> None:
        self.storage.reset()
        self._fallback.storage.reset()

    def metric_lines(self) -> list[str]:
        """Prometheus text for ``/metrics``."""
        out = [
            "# HELP powermeter_ratelimit_degraded_total Rate-limit decisions made without Redis "
            "(counted per process, or refused when fail-closed), by limit.",
            "# TYPE powermeter_ratelimit_degraded_total counter",
        ]
        with self._lock:
            items = sorted(self.degraded.items())
        out += [f'powermeter_ratelimit_degraded_total{{limit="{k}"}} {n}' for k, n in items]
        out += [
            "# HELP powermeter_ratelimit_redis_up 1 if the rate-limit Redis answered its last use, 0 if not.",
            "# TYPE powermeter_ratelimit_redis_up gauge",
        ]
        if self.shared:
            out.append(f"powermeter_ratelimit_redis_up {0 if self.redis_down else 1}")
        return out


def _result(allowed: bool, item: RateLimitItem, reset_time: float, remaining: int) -> LimitResult:
    reset = max(1, math.ceil(reset_time - time.time()))
    return LimitResult(allowed, item.amount, max(0, remaining), reset)
