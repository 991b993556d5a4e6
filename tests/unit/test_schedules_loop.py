"""The scheduler's job loop, driven by hand: jobs run only while leader, at their intervals,
all at once on a new term, and a lost lease stops them between two jobs.

The lease here is a scripted stand-in: the loop only asks it ``keep``/``valid``/``resign``,
and the real Redis lease is exercised in tests/integration/test_scheduler_lease.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from producer.scheduler.loop import Job, JobLoop

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class ScriptedLease:
    def __init__(self) -> None:
        self.leader = True
        self.resigned = 0

    def keep(self) -> bool:
        return self.leader

    def valid(self) -> bool:
        return self.leader

    def resign(self) -> None:
        self.resigned += 1


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def recorder(log: list[str], name: str) -> Job:
    return Job(name, 1.0, lambda now: log.append(f"{name}@{now:%H:%M}"))


def make(jobs: list[Job]) -> tuple[JobLoop, ScriptedLease, Clock]:
    lease, clock = ScriptedLease(), Clock()
    return JobLoop(jobs, lease, clock=lambda: NOW, monotonic=clock), lease, clock


def test_jobs_run_in_order_then_only_when_their_interval_passed() -> None:
    log: list[str] = []
    loop, _, clock = make([recorder(log, "a"), Job("b", 5.0, lambda _now: log.append("b"))])
    loop.step()
    assert log == ["a@08:00", "b"]
    clock.t = 0.5
    loop.step()
    clock.t = 1.0
    loop.step()
    assert log == ["a@08:00", "b", "a@08:00"]
    clock.t = 5.0
    loop.step()
    assert log[-2:] == ["a@08:00", "b"]


def test_a_follower_runs_nothing_and_a_new_term_runs_everything_at_once() -> None:
    log: list[str] = []
    loop, lease, clock = make(
        [recorder(log, "a"), Job("slow", 3600.0, lambda _n: log.append("slow"))]
    )
    loop.step()
    lease.leader = False
    clock.t = 10.0
    loop.step()
    assert log == ["a@08:00", "slow"] and not loop.leading
    lease.leader = True
    clock.t = 11.0
    loop.step()  # back as leader: the hourly job runs again now (finishing what was left)
    assert log == ["a@08:00", "slow", "a@08:00", "slow"]


def test_losing_the_lease_mid_turn_stops_the_remaining_jobs() -> None:
    log: list[str] = []
    lease_holder: list[ScriptedLease] = []

    def first(_now: datetime) -> None:
        log.append("first")
        lease_holder[0].leader = False  # another scheduler took over meanwhile

    loop, lease, _ = make([Job("first", 1.0, first), recorder(log, "second")])
    lease_holder.append(lease)
    loop.step()
    assert log == ["first"] and not loop.leading


def test_a_failing_job_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    def broken(_now: datetime) -> None:
        raise RuntimeError("boom")

    loop, _, _ = make([Job("broken", 1.0, broken), recorder(log, "after")])
    loop.step()
    assert log == ["after@08:00"]
    assert "scheduler job broken failed" in caplog.text


def test_run_stops_on_the_event_and_resigns_the_lease() -> None:
    log: list[str] = []
    stop = threading.Event()
    lease = ScriptedLease()

    def last(_now: datetime) -> None:
        log.append("ran")
        stop.set()

    JobLoop([Job("last", 1.0, last)], lease, tick=0.01).run(stop)
    assert log == ["ran"] and lease.resigned == 1


def test_job_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        JobLoop([Job("a", 1, print), Job("a", 2, print)], ScriptedLease())
