"""Jobs for one-off broadcasts with a send time (``threadcast send --at``).

``LaunchDue`` sends every broadcast due within the grace (``Intake.send_due``: its
``scheduled`` deliveries become ``queued`` in one transaction), then publishes every due
broadcast not yet published, including those a dead leader left between the ledger and Redis.
``ExpireMissed`` deals with broadcasts due longer ago than the grace: cancelled and recorded
as missed, not sent.
Never a Celery ETA: the ledger holds the waiting broadcast, and Redis only ever sees what is due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from producer.scheduler.plan import Timeliness, classify
from threadcast.ledger import Ledger
from threadcast.ledger.launches import LaunchState
from threadcast.lifecycle import Intake, Publisher

log = logging.getLogger("threadcast.scheduler")

_LAUNCH_STATE = {Timeliness.ON_TIME: LaunchState.ON_TIME, Timeliness.LATE: LaunchState.LATE}


class LaunchDue:
    def __init__(self, ledger: Ledger, publisher: Publisher, grace_seconds: int) -> None:
        self._ledger = ledger
        self._intake = Intake(ledger, publisher)
        self._grace = grace_seconds

    def run(self, now: datetime) -> None:
        since = now - timedelta(seconds=self._grace)
        for due in self._ledger.launches.due(now, since=since):
            timeliness = classify(due.send_at, now, self._grace)
            state = _LAUNCH_STATE.get(timeliness, LaunchState.LATE)
            moved = self._intake.send_due(due.id, due.send_at, state, now)
            if moved:
                log.info("broadcast %s is due (%s, %d deliveries)", due.id, state, moved)
        for broadcast_id, count in self._intake.publish_due(now):
            log.info("published %d deliveries of broadcast %s", count, broadcast_id)


class ExpireMissed:
    def __init__(self, ledger: Ledger, grace_seconds: int) -> None:
        self._ledger = ledger
        self._grace = grace_seconds

    def run(self, now: datetime) -> None:
        for due in self._ledger.launches.due(now - timedelta(seconds=self._grace)):
            late = (now - due.send_at).total_seconds()
            note = (
                f"send time {due.send_at.isoformat()} missed by {late:.0f} s, beyond the grace "
                f"of {self._grace} s (THREADCAST_SCHEDULE_GRACE): not sent"
            )
            cancelled = self._ledger.launches.expire(due.id, due.send_at, now, note)
            if cancelled:
                log.warning(
                    "broadcast %s missed: %s (%d deliveries cancelled)", due.id, note, cancelled
                )
