"""The limit guard: how much longer than a second the sliding windows are, learnt from 429s.

Graph counts a post when it arrives; the gate counts it when ``start`` confirms its permit,
right before the POST. Between the two lie the worker's own scheduling (its asyncio loop
may be busy), the network and Graph's front door, and not equally for every post: the
windows must be longer than a second by at least that lag's spread, or two posts a
window apart at the gate arrive less than a second apart at Graph. ``bench/limits.py``
measures the spread: 4 ms median, 62 ms at the 99th percentile and 150 ms at worst on
this 2-core machine under load, where the configured guard (THREADCAST_LIMIT_GUARD_MS,
20 ms) is right most of the time and a fixed 150 ms would cost 13 % of every limit.

So the guard adapts. Every 429 that Graph answers widens it (``throttled``): to 1.5 times
what it was plus 10 ms, at most ``CAP_MS``; it stays widened for ``WIDE_SECONDS`` after
the last 429 and then returns to the configured value. One value in Redis for every host
(the windows must agree), read at most once a second per process (``current``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from threadcast.constants import KEY_PREFIX

KEY = KEY_PREFIX + "{dispatch}:guard"  # milliseconds, while widened; gone: the configured
CAP_MS = 250.0
WIDE_SECONDS = 600
_READ_EVERY = 1.0

# Atomic: two 429s at once widen it twice, never lose one.
_WIDEN = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(now, tonumber(ARGV[1]))
local wider = math.min(tonumber(ARGV[2]), base * 1.5 + 10)
redis.call('SET', KEYS[1], string.format('%.3f', wider), 'EX', tonumber(ARGV[3]))
return string.format('%.3f', wider)
"""


class AdaptiveGuard:
    def __init__(
        self,
        client: redis.Redis,
        configured_ms: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self.configured_ms = configured_ms
        self._monotonic = monotonic
        self._widen = client.register_script(_WIDEN)
        self._value = configured_ms
        self._read_at = -_READ_EVERY

    def current(self) -> float:
        """The guard in milliseconds now (Redis read at most once a second; if Redis cannot
        be read, the last value known)."""
        now = self._monotonic()
        if now - self._read_at >= _READ_EVERY:
            try:
                raw = self._redis.get(KEY)
            except redis.RedisError:
                return self._value
            self._read_at = now
            self._value = max(self.configured_ms, float(raw) if raw is not None else 0.0)
        return self._value

    def window(self) -> float:
        """The sliding windows' length in seconds."""
        return 1.0 + self.current() / 1000.0

    def throttled(self) -> float:
        """Graph answered 429: widen the guard for every host; returns it (ms)."""
        try:
            wider = float(self._widen(keys=[KEY], args=[self.configured_ms, CAP_MS, WIDE_SECONDS]))
        except redis.RedisError:
            return self._value
        self._value, self._read_at = wider, self._monotonic()
        return wider
