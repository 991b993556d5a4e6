"""The dispatcher: lets waiting deliveries out of the gate as Celery messages, within limits.

Every worker process runs one in a thread; a Redis lease makes exactly one of them act at a
time, and another takes over within seconds of its death. It sleeps until the next permit
can be issued or new work is announced (the gate's wake list), never polling the limits,
and keeps the Celery queue short (THREADCAST_DISPATCH_BACKLOG) so that a permit is used
within moments of being issued.

It cannot die quietly: a turn that fails for any reason (Redis, the broker, the ledger, a
bug) is logged and tried again after a backoff; if its loop ever ends while the worker runs,
:meth:`Dispatcher.supervise` starts it again. While it holds the lease it writes a heartbeat
(:mod:`threadcast.heartbeat`) that ``threadcast doctor``, the workers' ``/healthz`` and
``/metrics`` read; every process's own loop records when it last turned, for its ``/healthz``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from threadcast import metrics
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Keeper, Release
from threadcast.errors import ThreadcastError
from threadcast.heartbeat import Beat, Heartbeat
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
# After a failed turn: wait, doubling up to the cap, until a turn succeeds again.
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0
_CHANGES_EVERY = 0.25  # seconds between looks for edits and recalls due


class Dispatcher:
    def __init__(
        self,
        gate: Keeper,
        lease: LeaderLease,
        publish: Publish,
        note_held: NoteHeld,
        backlog: int,
        batch_size: int = 1,
        spread: int = 1,
        heartbeat: Heartbeat | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        launch_changes: Callable[[], int] | None = None,
    ) -> None:
        """``launch_changes``: hands the edits and recalls due to the workers (at most every
        :data:`_CHANGES_EVERY` seconds, while leading)."""
        self._gate = gate
        self._lease = lease
        self._publish = publish
        self._note_held = note_held
        self._backlog = backlog  # deliveries released and not yet taken, at most
        self._batch_size = batch_size
        self._spread = spread  # worker processes to share a small release between
        self._heartbeat = heartbeat
        self._monotonic = monotonic
        self._launch_changes = launch_changes
        self._changes_at = 0.0  # when the due changes were last looked for (monotonic)
        self.released = 0
        self.leading = False  # this process held the lease at its last turn
        self.restarts = 0  # times the loop ended (a bug) and supervise() started it again
        self.turned_at = monotonic()  # this process's loop last went round (leader or not)
        self.error: str | None = None  # the last turn's error, None after a good turn

    def supervise(self, stop: threading.Event) -> None:
        """Run the loop until ``stop``; start it again if it ever ends or raises before."""
        backoff = _BACKOFF_FIRST
        while not stop.is_set():
            started = self._monotonic()
            try:
                self.run(stop)
            except BaseException as exc:  # the loop must outlive anything
                self.error = _describe(exc)
                log.exception("dispatcher: its loop failed; starting it again in %g s", backoff)
            else:
                if stop.is_set():
                    return
                log.error("dispatcher: its loop ended; starting it again in %g s", backoff)
            self.restarts += 1
            if self._monotonic() - started > _BACKOFF_CAP:
                backoff = _BACKOFF_FIRST  # it ran well for a while before it ended
            stop.wait(backoff)
            backoff = min(_BACKOFF_CAP, backoff * 2)

    def run(self, stop: threading.Event) -> None:
        backoff = _BACKOFF_FIRST
        try:
            while not stop.is_set():
                self.turned_at = self._monotonic()
                self.leading = self._lease.keep()
                if not self.leading:
                    stop.wait(self._lease.ttl / 3)
                    continue
                try:
                    self._changes()
                    pause = self.turn()
                    backoff = _BACKOFF_FIRST
                    self.error = None
                    self._beat()
                    if pause > 0:
                        self._sleep(pause, stop)  # a BLPOP on Redis: it can fail too
                except Exception as exc:  # any failure: log, back off, go on
                    # Redis away, the broker refusing, the ledger down, a bug: keep the
                    # thread alive and try again, or nothing would be released again.
                    self._failed(exc, backoff)
                    stop.wait(backoff)
                    backoff = min(_BACKOFF_CAP, backoff * 2)
        finally:
            self.leading = False
            self._lease.resign()

    def _changes(self) -> None:
        """Hand out the edits and recalls due now (one Redis look, a few times a second)."""
        if self._launch_changes is None or self._monotonic() - self._changes_at < _CHANGES_EVERY:
            return
        self._changes_at = self._monotonic()
        self._launch_changes()

    def _failed(self, exc: Exception, backoff: float) -> None:
        self.error = _describe(exc)
        if isinstance(exc, ThreadcastError):  # says what to do in one line
            log.warning("dispatcher: %s; trying again in %g s", exc, backoff)
        else:
            log.error("dispatcher: a turn failed; trying again in %g s", backoff, exc_info=exc)
        self._beat(force=True)

    def _beat(self, *, force: bool = False) -> None:
        if self._heartbeat is not None:
            beat = Beat(self._lease.holder, self.released, self.restarts, self.error)
            self._heartbeat.beat(beat, force=force)

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
            self._hand_over(release.messages)
            for m in release.messages:
                if m.ready_at is not None:
                    metrics.observe_limiter_wait(release.at - m.ready_at)
        self._aside(release)
        if len(release.messages) + len(release.unreadable) == room:
            return 0.0
        if release.next_wake is None:
            return _MAX_SLEEP
        return min(_MAX_SLEEP, max(0.0, release.next_wake - time.time()))

    def _aside(self, release: Release) -> None:
        """What the release did not hand over: quota holds, entries it could not read."""
        if release.held:
            self._note(release.held)
        for entry, why in release.unreadable:
            # Written by another version of threadcast (or damaged): it left the gate; its
            # delivery stays queued in the ledger, where the orphan sweep publishes it again.
            log.error("dispatcher: dropped a gate entry it cannot read (%s): %.300s", why, entry)

    def _note(self, held: list[DeliveryMessage]) -> None:
        # Already parked until midnight in Redis; the ledger's note only says why. A ledger
        # that cannot take the note must not stop the releasing.
        try:
            self._note_held(held, _next_midnight())
        except Exception as exc:
            log.warning(
                "dispatcher: could not note %d quota holds in the ledger: %s",
                len(held),
                _describe(exc),
            )

    def _hand_over(self, messages: list[DeliveryMessage]) -> None:
        """Publish released deliveries; any the broker did not take go back into the gate at
        the front of their queues (a lost publish must not wait for the orphan sweep)."""
        try:
            self._publish(batches(messages, self._batch_size, self._spread))
        except Exception:
            put_back = 0
            try:
                for m in messages:
                    self._gate.park(m, 0.0)
                    put_back += 1
            except Exception as again:  # the orphan sweep finds the rest
                log.warning(
                    "dispatcher: %d released deliveries could not be put back (%s); "
                    "the orphan sweep re-queues them",
                    len(messages) - put_back,
                    _describe(again),
                )
            raise
        self.released += len(messages)

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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _next_midnight() -> datetime:
    now = datetime.now(UTC)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
