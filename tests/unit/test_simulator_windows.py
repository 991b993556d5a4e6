"""The throttle's meters: an exact sliding one-second window, and a count per UTC day."""

from __future__ import annotations

import pytest

from simulator.windows import DAY_SECONDS, DayCount, SlidingWindow


def test_the_window_is_half_open_one_second_back() -> None:
    window = SlidingWindow()
    for now in (10.0, 10.5, 10.9):
        window.add(now)
    # (10.0, 11.0] no longer holds the arrival at exactly 10.0.
    assert window.wait(11.0, limit=3) == 0.0
    window.add(11.0)
    assert window.wait(11.0, limit=3) == pytest.approx(0.5)  # until 10.5 leaves at 11.5


def test_max_window_is_the_fullest_window_over_the_arrivals() -> None:
    window = SlidingWindow()
    for now in (0.0, 0.5, 0.9, 1.0, 1.4, 3.0):
        window.add(now)
    # (0.4, 1.4] holds 0.5, 0.9, 1.0, 1.4; no window ever held five.
    assert window.max_window == 4


def test_wait_names_the_arrival_that_must_leave_for_one_more_to_fit() -> None:
    window = SlidingWindow()
    for now in (0.1, 0.2, 0.3, 0.4):
        window.add(now)
    assert window.wait(0.5, limit=4) == pytest.approx(0.6)  # 0.1 leaves at 1.1
    assert window.wait(0.5, limit=2) == pytest.approx(0.8)  # 0.3 must leave too: at 1.3
    assert window.wait(0.5, limit=5) == 0.0
    assert window.wait(0.5, limit=0) == 0.0  # 0 is no limit


def test_a_window_holds_only_what_it_needs() -> None:
    window = SlidingWindow()
    for n in range(100_000):
        window.add(n / 1024)  # exact binary fractions: 1024 arrivals a second
    assert window.max_window == 1024
    assert len(window._times) == 1024


def test_the_day_count_restarts_at_utc_midnight() -> None:
    day = DayCount()
    before_midnight = 20_000 * DAY_SECONDS - 10.25
    day.add(before_midnight)
    day.add(before_midnight)
    assert day.today(before_midnight) == 2
    assert day.wait(before_midnight, limit=2) == pytest.approx(10.25)
    assert day.wait(before_midnight, limit=3) == 0.0
    after = 20_000 * DAY_SECONDS
    assert day.today(after) == 0
    assert day.wait(after, limit=2) == 0.0
    day.add(after)
    assert day.today(after) == 1
