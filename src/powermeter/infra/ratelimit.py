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
to ``BACKOFF_MAX_S``); between tries no request touches it.

Daily quotas and kWh caps stay exact. In the database alone (SQLite; PostgreSQL without Redis) they are
checked under the counter row's lock. With PostgreSQL and Redis, :class:`QuotaCounters` admits each
request with one atomic Lua check-and-increment, and the database counters are the durable ledger
(written once per account per batch, infra/db/unit_of_work.py). While Redis is unreachable the
quotas are checked in the database again (exact, but with the row locks held to the batch's commit).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

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


# One round trip for a hit and its window's figures (the ``limits`` library takes two: acquire, then stats),
# on the library's own data: a list per key of hit times, newest first, at most ``limit`` long, so processes
# of either kind share the same windows. KEYS[1] the window; ARGV: now, limit, expiry (s).
# Answers {allowed (0/1), the oldest hit time still in the window (or false), hits in the window}.
_HIT_AND_STATS = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local target = now - expiry
local allowed = 0
local last = redis.call('lindex', KEYS[1], limit - 1)
if not (last and tonumber(last) >= target) then
  redis.call('lpush', KEYS[1], ARGV[1])
  redis.call('ltrim', KEYS[1], 0, limit - 1)
  redis.call('expire', KEYS[1], expiry)
  allowed = 1
end
local low, high, found = 0, limit - 1, -1
while low <= high do
  local mid = math.floor((low + high) / 2)
  local val = tonumber(redis.call('lindex', KEYS[1], mid))
  if val and val >= target then
    found = mid
    low = mid + 1
  else
    high = mid - 1
  end
end
if found >= 0 then
  return {allowed, redis.call('lindex', KEYS[1], found), found + 1}
end
return {allowed, false, 0}
"""


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
        self._hit_script: Any = None
        if isinstance(self.storage, RedisStorage):
            self._hit_script = self.storage.storage.register_script(_HIT_AND_STATS)
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
                if self._hit_script is not None:
                    result = self._redis_hit(item, identifiers)
                else:
                    allowed = self._limiter.hit(item, *identifiers)
                    stats = self._limiter.get_window_stats(item, *identifiers)
                    result = _result(allowed, item, stats.reset_time, stats.remaining)
            except (StorageError, OSError, RedisError) as e:
                self._failed(e)
            else:
                if self._down_since is not None:
                    self._recovered()
                return result
        return self._degraded(item, identifiers)

    def _redis_hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> LimitResult:
        """What ``hit`` then ``get_window_stats`` of the library answer, in one Redis round trip."""
        assert isinstance(self.storage, RedisStorage)  # noqa: S101 (set up in __init__ with the script)
        key = self.storage.prefixed_key(item.key_for(*identifiers))
        now = time.time()
        expiry = item.get_expiry()
        allowed, oldest, count = self._hit_script(keys=[key], args=[repr(now), item.amount, expiry])
        start = float(oldest) if count else now
        return _result(bool(allowed), item, start + expiry, item.amount - int(count))

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


# --- exact daily quotas in Redis (PostgreSQL group commit) -----------------------------------------

# KEYS[1] the counter; ARGV: amount, limit (-1: none), the database ledger's committed value (-1: not
# read), TTL (s). A missing key (first use of the day, a flushed Redis) is seeded from the ledger: the
# script answers {-1} and the caller reads the ledger and calls again. A refused amount is not added.
_ADMIT = """
local cur = redis.call('GET', KEYS[1])
if cur then
  cur = tonumber(cur)
else
  cur = tonumber(ARGV[3])
  if cur < 0 then return {-1, '0'} end
end
local new = cur + tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and new > limit then
  return {0, string.format('%d', new)}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'EX', tonumber(ARGV[4]))
return {1, string.format('%d', new)}
"""
# Give an admission back (the request's work was rolled back); a key that expired stays absent.
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECRBY', KEYS[1], ARGV[1])
end
return 0
"""
QUOTA_TTL_S = 2 * 86_400  # a daily counter outlives its day by one (clock skew between machines)


class QuotaUnavailable(Exception):
    """Redis did not answer an admission: the caller checks in the database instead."""


class QuotaCounters:
    """Daily usage admission shared by every process: ``admit`` adds an amount unless it would pass
    the limit, atomically in Redis (one round trip); ``release`` gives it back."""

    def __init__(self, redis_url: str, key_prefix: str = "powermeter") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._admit = self._redis.register_script(_ADMIT)
        self._release = self._redis.register_script(_RELEASE)
        self.prefix = f"{key_prefix}:quota"
        self._retry_at = 0.0
        self._backoff = 0.0
        self._lock = threading.Lock()
        self.degraded = 0  # admissions checked in the database because Redis did not answer
        self._stale: set[str] = set()

    def key(self, account_id: str, metric: str, period: str) -> str:
        return f"{self.prefix}:{account_id}:{metric}:{period}"

    def admit(self, key: str, amount: int, limit: int | None, ledger: Callable[[], int]) -> tuple[bool, int]:
        """``(allowed, total)``: the total after adding ``amount`` (or what it would have been).
        ``ledger()`` reads the database's committed value; called only when Redis has no counter."""
        if time.monotonic() < self._retry_at:
            self._degrade()
        lim = -1 if limit is None else limit
        try:
            if self._stale:
                self._resync()
            ok, total = self._admit(keys=[key], args=[amount, lim, -1, QUOTA_TTL_S])
            if int(ok) == -1:
                ok, total = self._admit(keys=[key], args=[amount, lim, ledger(), QUOTA_TTL_S])
        except QuotaUnavailable:
            raise
        except Exception as e:  # redis.exceptions.RedisError, OSError
            if not _is_redis_error(e):
                raise
            self._failed(e)
        self._backoff = 0.0
        return int(ok) == 1, int(total)

    def counted_in_database(self, key: str) -> None:
        """``key``'s amounts were counted in the database while Redis was down: the Redis counter misses
        them, so it is dropped (and seeded again from the ledger) once Redis answers."""
        with self._lock:
            self._stale.add(key)

    def _resync(self) -> None:
        with self._lock:
            keys, self._stale = list(self._stale), set()
        try:
            self._redis.delete(*keys)
        except Exception:
            with self._lock:
                self._stale.update(keys)
            raise

    def release(self, key: str, amount: int) -> None:
        try:
            self._release(keys=[key], args=[amount])
        except Exception as e:
            log.warning(
                "quota: could not give back %d on %s (%s); the counter refuses early until the day ends", amount, key, e
            )

    def _degrade(self) -> None:
        with self._lock:
            self.degraded += 1
        raise QuotaUnavailable("Redis is not answering (backing off)")

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self._backoff == 0.0
            self._backoff = BACKOFF_MIN_S if first else min(BACKOFF_MAX_S, self._backoff * 2)
            self._retry_at = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)  # noqa: S311
            self.degraded += 1
        if first:
            log.warning(
                "quota: Redis unreachable (%s: %s); daily quotas are checked in the database", type(exc).__name__, exc
            )
        raise QuotaUnavailable(str(exc)) from exc

    def reset(self) -> None:
        for k in self._redis.scan_iter(match=f"{self.prefix}:*"):
            self._redis.delete(k)


def _is_redis_error(e: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(e, RedisError | OSError)
