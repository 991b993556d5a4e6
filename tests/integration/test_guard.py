"""The adaptive limit guard (threadcast/guard.py), against a real Redis."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from threadcast.guard import CAP_MS, KEY, WIDE_SECONDS, AdaptiveGuard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_429_widens_the_guard_for_every_host_and_it_returns_when_they_stop(
    clean_redis: redis.Redis,
) -> None:
    clock = Clock()
    here, there = AdaptiveGuard(clean_redis, 20.0, clock), AdaptiveGuard(clean_redis, 20.0, clock)
    assert here.current() == there.current() == 20.0 and here.window() == 1.02
    assert here.throttled() == 40.0  # 20 x 1.5 + 10
    assert there.current() == 20.0  # read at most once a second
    clock.now += 1.0
    assert there.current() == 40.0 and there.window() == 1.04
    assert there.throttled() == 70.0
    assert 0 < clean_redis.ttl(KEY) <= WIDE_SECONDS
    for _ in range(10):
        here.throttled()
    assert here.current() == CAP_MS  # never wider than the cap
    clean_redis.delete(KEY)  # WIDE_SECONDS without a 429: it expires
    clock.now += 1.0
    assert here.current() == there.current() == 20.0


def test_redis_away_keeps_the_last_value(clean_redis: redis.Redis) -> None:
    clock = Clock()
    guard = AdaptiveGuard(clean_redis, 20.0, clock)
    guard.throttled()
    nowhere = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    gone = AdaptiveGuard(nowhere, 20.0, clock)
    assert gone.current() == 20.0 and gone.throttled() == 20.0
    clock.now += 5
    assert guard.current() == 40.0
