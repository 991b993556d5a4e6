"""The in-flight bound of a worker process (worker/flight.py): Little's law, measured."""

from __future__ import annotations

import math
import threading
import time

import pytest

from worker.flight import HEADROOM, FlightControl


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_batches(flight: FlightControl, clock: Clock, count: int, hold: float) -> None:
    for _ in range(count):
        with flight.slots(8):
            clock.now += hold


def test_the_bound_starts_at_the_cap_and_follows_the_observed_hold_time() -> None:
    clock = Clock()
    flight = FlightControl(rate=500, cap=1024, batch_size=8, monotonic=clock)
    assert flight.limit == 1024  # nothing observed yet
    run_batches(flight, clock, 16, hold=0.25)  # Graph answering in a quarter of a second
    assert flight.limit == math.ceil(500 * 0.25 * HEADROOM)  # 188: rate x W x headroom
    run_batches(flight, clock, 256, hold=0.002)  # a simulator answering at once
    assert flight.limit == 16  # two batches: never less
    run_batches(flight, clock, 256, hold=3.0)  # slower than the cap allows
    assert flight.limit == 1024
    assert flight.in_flight == 0 and flight.peak == 8


@pytest.mark.parametrize(("hold", "expected"), [(0.0, 16), (0.05, 38), (1.0, 750), (9.0, 1024)])
def test_bound(hold: float, expected: int) -> None:
    assert FlightControl(rate=500, cap=1024, batch_size=8).bound(hold) == expected


def test_a_thread_over_the_bound_waits_until_places_are_given_back() -> None:
    flight = FlightControl(rate=100, cap=16, batch_size=8)
    first, second = threading.Event(), threading.Event()
    entered: list[str] = []

    def batch(name: str, release: threading.Event) -> None:
        with flight.slots(8):
            entered.append(name)
            release.wait(10)

    threads = [threading.Thread(target=batch, args=(n, first)) for n in ("a", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while flight.in_flight < 16 and time.monotonic() < deadline:
        time.sleep(0.01)
    third = threading.Thread(target=batch, args=("c", second))
    third.start()
    time.sleep(0.2)
    assert sorted(entered) == ["a", "b"] and flight.in_flight == 16  # c waits, unclaimed
    first.set()
    for t in threads:
        t.join(5)
    second.set()
    third.join(5)
    assert sorted(entered) == ["a", "b", "c"] and flight.in_flight == 0 and flight.peak == 16


def test_a_batch_bigger_than_the_bound_still_goes_alone() -> None:
    flight = FlightControl(rate=1, cap=4, batch_size=8)
    with flight.slots(32):
        assert flight.in_flight == 4


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        FlightControl(rate=0, cap=4, batch_size=1)
