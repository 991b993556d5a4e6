"""The scheduler's loop: periodic jobs, run only while this process holds the leader lease.

Every tick (``TICK_SECONDS``) the loop takes or renews the lease; while it leads, it runs each
job whose interval has passed, in list order, re-checking the lease before each one. A job
that raises is logged and tried again at its next interval; the others go on. When the
process becomes leader (at start, or by taking over from a dead leader), every job runs at
once: that is when work a dead leader left half done gets finished.

Adding a job: see :mod:`producer.scheduler.jobs`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from threadcast.errors import ThreadcastError

log = logging.getLogger("threadcast.scheduler")

#: How often the loop wakes: bounds how late a due broadcast is launched (well under 1 s).
TICK_SECONDS = 0.25

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    """A periodic job of the scheduler.

    ``run(now)`` gets the scheduler's clock reading (aware, UTC) and must be idempotent: around
    a change of leader it may run in two processes, or again after a crash mid-run. It should
    finish well within the lease (seconds): do a bounded amount of work per run.
    """

    name: str
    interval: float  # seconds between the starts of two runs
    run: Callable[[datetime], None]


class Lease(Protocol):
    def keep(self) -> bool: ...
    def valid(self) -> bool: ...
    def resign(self) -> None: ...


class JobLoop:
    def __init__(
        self,
        jobs: Sequence[Job],
        lease: Lease,
        *,
        clock: Clock = utc_now,
        tick: float = TICK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._jobs = tuple(jobs)
        self._lease = lease
        self._clock = clock
        self._tick = tick
        self._monotonic = monotonic
        self._next_run: dict[str, float] = {}
        self.leading = False

    def run(self, stop: threading.Event) -> None:
        """Turn until ``stop`` is set, then give up the lease."""
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self._tick)
        finally:
            self._lease.resign()
            if self.leading:
                log.info("scheduler: stopping; leader lease given up")
            self.leading = False

    def step(self) -> None:
        """One turn: take or keep the lease, then run the jobs that are due."""
        self._set_leading(self._lease.keep())
        for job in self._jobs:
            if not self.leading:
                return
            if self._monotonic() >= self._next_run.get(job.name, 0.0):
                self._run(job)
            self._set_leading(self._lease.valid())

    def _run(self, job: Job) -> None:
        self._next_run[job.name] = self._monotonic() + job.interval
        try:
            job.run(self._clock())
        except ThreadcastError as exc:  # Redis or the ledger unreachable, …: said in one line
            log.warning("scheduler job %s: %s; it runs again in %g s", job.name, exc, job.interval)
        except Exception:
            log.exception("scheduler job %s failed; it runs again in %g s", job.name, job.interval)

    def _set_leading(self, leading: bool) -> None:
        if leading and not self.leading:
            log.info("scheduler: now the leader; running %d jobs", len(self._jobs))
            self._next_run.clear()  # a new term runs every job at once
        elif self.leading and not leading:
            log.warning("scheduler: no longer the leader; stopped acting")
        self.leading = leading
