"""The dispatcher: lets waiting deliveries out of the gate as Celery messages, within limits.

Every worker process runs one in a thread; a Redis lease makes exactly one of them act at a
time, and another takes over within seconds of its death. It sleeps until the next permit
can be issued or new work is announced (the gate's wake list), never polling the limits,
and keeps the Celery queue short (THREADCAST_DISPATCH_BACKLOG) so that a permit is used
within moments of being issued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from threadcast import metrics
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate
from threadcast.errors import ThreadcastError
from threadcast.lease import LeaderLease

log = logging.getLogger("threadcast.dispatcher")

Publish = Callable[[list[list[DeliveryMessage]]], None]  # Celery messages, each a batch
NoteHeld = Callable[[list[DeliveryMessage], datetime], None]

_MAX_SLEEP = 1.0  # also how often the lease is renewed while idle
# The workers have enough queued; look again soon, but not so often that the looking costs
# more than it saves (each turn is a few Redis round trips in the worker's main process).
_FULL_BACKLOG_SLEEP = 0.02
# Redis ends a blocking wait (BLPOP) on its own clock tick, 1/hz: 100 ms at the default hz.
_REDIS_TICK = 0.1
_STEP = 0.01  # while waiting for the next permit, new work is noticed within this


class Dispatcher:
    def __init__(
        self, gate: Gate, lease: LeaderLease, publish: Publish, note_held: NoteHeld, backlog: int,
        batch_size: int = 1, spread: int = 1,
    ) -> None:  # fmt: skip
        self._gate = gate
        self._lease = lease
        self._publish = publish
        self._note_held = note_held
        self._backlog = backlog  # deliveries released and not yet taken, at most
        self._batch_size = batch_size
        self._spread = spread  # worker processes to share a small release between
        self.released = 0

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                if not self._lease.hold():
                    stop.wait(self._lease.ttl / 3)
                    continue
                try:
                    pause = self.turn()
                    if pause > 0:
                        self._sleep(pause, stop)
                except ThreadcastError as exc:
                    # Redis away (or refusing): keep the thread alive and try again, or this
                    # worker would never release a delivery after an outage.
                    log.warning("dispatcher: %s", exc)
                    stop.wait(_MAX_SLEEP)
        finally:
            self._lease.release()

    def turn(self) -> float:
        """Release what may go now; return how long to sleep before the next turn."""
        self._gate.promote()
        # The queue holds batches; count each as full (the last of a release may not be).
        room = self._backlog - self._gate.backlog() * self._batch_size
        if room <= 0:
            return _FULL_BACKLOG_SLEEP
        release = self._gate.release(room)
        metrics.set_parked(release.parked)
        if release.messages:
            self._publish(batches(release.messages, self._batch_size, self._spread))
            self.released += len(release.messages)
            for m in release.messages:
                if m.ready_at is not None:
                    metrics.observe_limiter_wait(release.at - m.ready_at)
        if release.held:
            self._note_held(release.held, _next_midnight())
        if len(release.messages) == room:
            return 0.0
        if release.next_wake is None:
            return _MAX_SLEEP
        return min(_MAX_SLEEP, max(0.0, release.next_wake - time.time()))

    def _sleep(self, seconds: float, stop: threading.Event) -> None:
        if seconds <= _FULL_BACKLOG_SLEEP:
            stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        # A producer's wake ends it early; Redis may end it up to a tick late.
        if seconds > _REDIS_TICK and self._gate.wait(seconds - _REDIS_TICK):
            return
        # The last stretch on our own clock, so the next permit goes out on time (a late
        # dispatcher is throughput lost at the limit), looking for new work between steps.
        while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
            stop.wait(min(left, _STEP))
            if self._gate.woken():
                return


def batches(
    messages: list[DeliveryMessage], size: int, spread: int = 1
) -> list[list[DeliveryMessage]]:
    """Split into Celery messages of at most ``size`` deliveries, as evenly as that allows
    and into at least ``spread`` messages when there are enough deliveries: a small release
    (a quiet moment) goes to several worker processes at once, a big one in full batches."""
    count = max(-(-len(messages) // size), min(len(messages), spread))
    return [messages[i::count] for i in range(count)]


def _next_midnight() -> datetime:
    now = datetime.now(UTC)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
