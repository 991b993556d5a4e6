"""How many deliveries one worker process keeps in flight: Little's law, measured.

To post at the rate the gate can give (``rate`` permits a second, the app's ceiling) when
each delivery holds its place for ``W`` seconds (claim, permit, POST and answer, outcome),
``rate * W`` deliveries must be in flight. ``W`` is observed here, per delivery, over the
last few hundred batches (its 90th percentile, with headroom), so the same defaults serve a
simulator that answers in a millisecond and a Graph that answers in a second; the bound
never exceeds ``cap`` (THREADCAST_MAX_IN_FLIGHT) nor drops under two batches. Until enough
is observed the bound is ``cap``.

Worker threads take a batch's places before claiming it (:meth:`FlightControl.slots`) and
give them back once its outcomes are recorded; a thread over the bound waits here, before
any claim, so what a SIGKILL can leave ``unknown`` never exceeds the bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEADROOM = 1.5  # in flight beyond rate * W: answer times vary, and permits come in bursts
_OBSERVED = 256  # batches whose hold times are kept
_ENOUGH = 16  # batches observed before the bound follows them
_EVERY = 16  # batches between two recomputations of the percentile


class FlightControl:
    def __init__(
        self,
        rate: float,
        cap: int,
        batch_size: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or cap < 1 or batch_size < 1:
            raise ValueError("rate, cap and batch_size must be positive")
        self.rate = rate
        self.cap = cap
        self.floor = min(cap, 2 * batch_size)
        self._monotonic = monotonic
        self._holds: deque[float] = deque(maxlen=_OBSERVED)  # seconds per delivery's place
        self._since_update = 0
        self._limit = cap
        self._in_flight = 0
        self.peak = 0  # the most in flight at once since start
        self._lock = threading.Lock()
        # Threads waiting for places, first come first served, each woken alone when its
        # places are free: no herd of hundreds of threads woken at every batch's end.
        self._waiting: deque[tuple[int, threading.Event]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def slots(self, count: int) -> Iterator[None]:
        """Hold ``count`` places (at most the bound) for a batch, waiting until they are
        free; what the batch took is then observed."""
        count = max(1, min(count, self.cap))
        turn: threading.Event | None = None
        with self._lock:
            if not self._waiting and self._fits(count):
                self._take(count)
            else:
                turn = threading.Event()
                self._waiting.append((count, turn))
        if turn is not None:
            turn.wait()  # set once the places are ours (taken for us by the one who freed them)
        started = self._monotonic()
        try:
            yield
        finally:
            held = self._monotonic() - started
            with self._lock:
                self._in_flight -= count
                self._observe(held)
                while self._waiting and self._fits(self._waiting[0][0]):
                    wanted, waiter = self._waiting.popleft()
                    self._take(wanted)
                    waiter.set()

    def _fits(self, count: int) -> bool:
        # A batch bigger than the bound still goes, alone, rather than never.
        return self._in_flight == 0 or self._in_flight + count <= self._limit

    def _take(self, count: int) -> None:
        self._in_flight += count
        self.peak = max(self.peak, self._in_flight)

    def _observe(self, held: float) -> None:
        self._holds.append(held)
        self._since_update += 1
        if len(self._holds) >= _ENOUGH and self._since_update >= _EVERY:
            self._since_update = 0
            self._limit = self.bound(_percentile(self._holds, 0.9))

    def bound(self, hold: float) -> int:
        """The in-flight bound for deliveries that each hold their place ``hold`` seconds."""
        wanted = math.ceil(self.rate * hold * HEADROOM)
        return max(self.floor, min(self.cap, wanted))


def _percentile(values: deque[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
