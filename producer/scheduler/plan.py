"""What is due, and how late: pure functions of a schedule, a watermark and ``now``.

An occurrence (or a one-off send time) launched within ``LATE_AFTER_SECONDS`` of its time is
on time; later but within the grace it is sent and marked late; beyond the grace it is not
sent at all but recorded as missed -- after a long downtime the scheduler does not fire a
burst of stale announcements.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from producer.scheduler.cron import Recurrence
from threadcast.constants import LATE_AFTER_SECONDS
from threadcast.ledger.schedules import OccurrenceState

#: The most occurrences of one schedule dealt with in one run (catching up after downtime
#: goes on in the next runs, a fraction of a second later).
MAX_PER_RUN = 200


class Timeliness(enum.Enum):
    ON_TIME = "on time"
    LATE = "late"
    MISSED = "missed"


@dataclass(frozen=True)
class Due:
    at: datetime
    timeliness: Timeliness

    @property
    def state(self) -> OccurrenceState:
        return _OCCURRENCE_STATE[self.timeliness]


_OCCURRENCE_STATE = {
    Timeliness.ON_TIME: OccurrenceState.ON_TIME,
    Timeliness.LATE: OccurrenceState.LATE,
    Timeliness.MISSED: OccurrenceState.MISSED,
}


def classify(at: datetime, now: datetime, grace_seconds: float) -> Timeliness:
    """How late launching something due at ``at`` is at ``now``."""
    delay = (now - at).total_seconds()
    if delay <= LATE_AFTER_SECONDS:
        return Timeliness.ON_TIME
    if delay <= grace_seconds:
        return Timeliness.LATE
    return Timeliness.MISSED


def due_occurrences(
    recurrence: Recurrence,
    checked_through: datetime,
    now: datetime,
    grace_seconds: float,
    limit: int = MAX_PER_RUN,
) -> list[Due]:
    """The occurrences after the watermark up to ``now``, earliest first, each classified.

    A clock read earlier than the watermark yields nothing: nothing fires twice.
    """
    ats = recurrence.between(checked_through, now, limit)
    return [Due(at, classify(at, now, grace_seconds)) for at in ats]


def occurrence_broadcast_id(schedule_id: str, at: datetime) -> str:
    """The broadcast id of an occurrence: the same (schedule, instant) always gives the same
    id, so launching it twice -- two schedulers, a restart mid-launch -- sends it once."""
    return f"sched-{schedule_id}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"
