"""Counting accepted requests over time: a sliding one-second window and a UTC-day count.

Both answer the two questions a throttle asks, in O(1) amortised time per request: how long
until one more request fits under a limit (0 if it fits now), and "count this one".
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 1.0
DAY_SECONDS = 86_400


class SlidingWindow:
    """Accepted requests in the window (t - 1 s, t], and the most any such window has held.

    Arrival times must not decrease (the throttle makes its clock monotonic). The largest count
    over all windows is reached at some arrival, right after it is counted, so tracking the
    count at each arrival gives the exact maximum.
    """

    __slots__ = ("_times", "max_window")

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.max_window = 0

    def _trim(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        times = self._times
        while times and times[0] <= horizon:
            times.popleft()

    def wait(self, now: float, limit: int) -> float:
        """Seconds until a request arriving at ``now`` would fit under ``limit``; 0 if it does."""
        self._trim(now)
        times = self._times
        excess = len(times) - limit
        if excess < 0 or limit <= 0:  # a limit of 0 is no limit
            return 0.0
        # The (excess+1)-th oldest arrival must leave the window, which it does 1 s after it came.
        return times[excess] + WINDOW_SECONDS - now

    def add(self, now: float) -> None:
        self._trim(now)
        times = self._times
        times.append(now)
        if len(times) > self.max_window:
            self.max_window = len(times)


class DayCount:
    """Accepted requests on the current UTC calendar day."""

    __slots__ = ("_count", "_day")

    def __init__(self) -> None:
        self._day = -1
        self._count = 0

    def today(self, now: float) -> int:
        return self._count if int(now // DAY_SECONDS) == self._day else 0

    def wait(self, now: float, limit: int) -> float:
        """Seconds until a request at ``now`` fits under ``limit``: 0, or until UTC midnight."""
        if self.today(now) < limit or limit <= 0:
            return 0.0
        return (int(now // DAY_SECONDS) + 1) * DAY_SECONDS - now

    def add(self, now: float) -> None:
        day = int(now // DAY_SECONDS)
        if day != self._day:
            self._day, self._count = day, 0
        self._count += 1
