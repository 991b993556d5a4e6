"""The ``threadcast scheduler`` process: wiring, signals, clean shutdown.

Run as many as you like (on different machines too): they share the leader lease in Redis
and one of them acts at a time. SIGTERM or SIGINT stops the process after the job in hand and
drops the lease, so a follower takes over on its next tick instead of waiting for expiry.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from producer.scheduler.jobs import SchedulerContext, default_jobs
from producer.scheduler.loop import Clock, JobLoop, utc_now
from threadcast.constants import SCHEDULER_LEASE_KEY
from threadcast.lease import LeaderLease
from threadcast.settings import Settings

log = logging.getLogger("threadcast.scheduler")


def run_scheduler(
    settings: Settings, stop: threading.Event | None = None, *, clock: Clock = utc_now
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when on the main thread)."""
    stop = stop or threading.Event()
    with SchedulerContext.open(settings) as ctx, _stop_on_signals(stop):
        lease = LeaderLease(ctx.redis, SCHEDULER_LEASE_KEY, settings.scheduler_lease_seconds)
        log.info("scheduler %s: started (lease %g s)", lease.holder, lease.ttl)
        JobLoop(default_jobs(ctx, lease.keep), lease, clock=clock).run(stop)
        log.info("scheduler %s: stopped", lease.holder)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller sets ``stop``
        return

    def _handler(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
