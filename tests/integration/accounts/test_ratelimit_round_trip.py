"""The per-minute limit on Redis in one round trip answers what the ``limits`` library's two calls answer,
on the same data, so processes of either kind share one window (needs Redis: POWERMETER_TEST_REDIS_URL)."""

from __future__ import annotations

import uuid

from powermeter.infra.ratelimit import RateLimiter
from tests.conftest import REDIS_URL, needs_redis

pytestmark = [needs_redis]


def _limiters(prefix: str) -> tuple[RateLimiter, RateLimiter]:
    assert REDIS_URL is not None
    one_trip = RateLimiter(REDIS_URL, key_prefix=prefix)
    library = RateLimiter(REDIS_URL, key_prefix=prefix)
    library._hit_script = None  # the library's acquire, then its window statistics
    assert one_trip._hit_script is not None
    return one_trip, library


def test_one_round_trip_answers_as_the_library_does() -> None:
    a, _ = _limiters("pmt-" + uuid.uuid4().hex[:10])
    _, b = _limiters("pmt-" + uuid.uuid4().hex[:10])
    got_a = [a.hit("5/minute", "key", "k") for _ in range(8)]
    got_b = [b.hit("5/minute", "key", "k") for _ in range(8)]
    assert [r.allowed for r in got_a] == [True] * 5 + [False] * 3
    assert [(r.allowed, r.limit, r.remaining) for r in got_a] == [(r.allowed, r.limit, r.remaining) for r in got_b]
    assert [r.remaining for r in got_a] == [4, 3, 2, 1, 0, 0, 0, 0]
    for x, y in zip(got_a, got_b, strict=True):
        assert abs(x.reset_after_s - y.reset_after_s) <= 1
        assert 1 <= x.reset_after_s <= 60


def test_both_kinds_share_one_window() -> None:
    a, b = _limiters("pmt-" + uuid.uuid4().hex[:10])
    results = [(a if i % 2 else b).hit("5/minute", "ip", "10.0.0.1") for i in range(9)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 4
    assert [r.remaining for r in results][:5] == [4, 3, 2, 1, 0]
    # another identifier has a window of its own
    assert a.hit("5/minute", "ip", "10.0.0.2").remaining == 4
