"""Time: the injectable clock and the timestamp formats the two protocols use."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch; stores take one so tests can move time without sleeping."""

wall_clock: Clock = time.time


class OffsetClock:
    """The wall clock plus an offset that moves only when told to: ``--test-clock``.

    Time keeps running as on the wall clock; a test jumps it forward (``POST /_sim/clock``)
    instead of sleeping through a Retry-After or a device code's approval delay, and may
    set the offset back to 0 afterwards (the stores cope with a clock that steps back, as
    they must with a wall clock).
    """

    __slots__ = ("_base", "offset")

    def __init__(self, base: Clock = wall_clock) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> None:
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"a clock advances by a non-negative number of seconds, not {seconds}")
        self.offset += seconds


def aad_timestamp(now: float) -> str:
    """The identity platform's error timestamp, e.g. ``2024-05-01 12:00:00Z``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def graph_date(now: float) -> str:
    """Graph's ``innerError.date``, e.g. ``2024-05-01T12:00:00``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_utc(now: float) -> str:
    """An ISO 8601 UTC instant with milliseconds, for the admin API."""
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


def graph_instant(now: float) -> str:
    """A Graph ``DateTimeOffset`` as resources carry it, e.g. ``2024-05-01T12:00:00.123Z``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
