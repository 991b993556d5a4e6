"""The job that turns due occurrences of recurring schedules into ordinary broadcasts.

For each active schedule it walks the occurrences after the schedule's watermark
(``checked_through``) up to ``now``. Each is recorded once in the ledger *before* anything is
sent -- the (schedule, instant) primary key makes the first writer win, so an occurrence an
operator skipped is never launched and one another scheduler launched is not launched again.
Its broadcast (the schedule's content, message parts and targets with their variables) is
then created through ``Producer.send`` under the deterministic id
``sched-<schedule>-<UTC instant>``: sending the same id again creates nothing new. The record
is marked finished once the broadcast is published; a scheduler that died in between leaves it
unfinished, and the next leader sends it again (idempotently) before anything else.
"""

from __future__ import annotations

import logging
from datetime import datetime

from producer.client import Producer
from producer.scheduler.cron import Recurrence
from producer.scheduler.plan import (
    Due,
    Timeliness,
    classify,
    due_occurrences,
    occurrence_broadcast_id,
)
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.schedules import OccurrenceState, ScheduleRecord, ScheduleTiming

log = logging.getLogger("threadcast.scheduler")


class LaunchOccurrences:
    def __init__(self, ledger: Ledger, producer: Producer) -> None:
        self._ledger = ledger
        self._producer = producer

    def run(self, now: datetime) -> None:
        self.finish_unfinished(now)
        for timing in self._ledger.schedules.active_timings():
            try:
                self._catch_up(timing, now)
            except ValidationError as exc:  # e.g. its time zone left the tz database
                log.error("schedule %s cannot be evaluated: %s", timing.id, exc)

    def finish_unfinished(self, now: datetime) -> None:
        """Send again what a dead leader recorded but did not confirm published -- unless no
        scheduler came back within the grace and its broadcast was never created."""
        for occurrence in self._ledger.schedules.unfinished():
            schedule = self._ledger.schedules.get(occurrence.schedule_id)
            if self._stale(schedule, occurrence.at, now):
                note = (
                    f"its scheduler died; missed by {(now - occurrence.at).total_seconds():.0f} s"
                )
                self._ledger.schedules.finish(
                    schedule.id, occurrence.at, now, instead=OccurrenceState.MISSED, note=note
                )
                continue
            self._send(schedule, occurrence.at, now)

    def _stale(self, schedule: ScheduleRecord, at: datetime, now: datetime) -> bool:
        if classify(at, now, schedule.grace_seconds) is not Timeliness.MISSED:
            return False
        try:
            self._ledger.broadcasts.info(occurrence_broadcast_id(schedule.id, at))
        except NotFoundError:
            return True
        return False  # created already: publishing what is queued again is harmless

    def _catch_up(self, timing: ScheduleTiming, now: datetime) -> None:
        recurrence = Recurrence.parse(timing.cron, timing.timezone)
        due = due_occurrences(recurrence, timing.checked_through, now, timing.grace_seconds)
        if not due:
            return
        schedule = self._ledger.schedules.get(timing.id)
        for occurrence in due:
            self._handle(schedule, occurrence, now)
        self._ledger.schedules.advance(schedule.id, due[-1].at, now)

    def _handle(self, schedule: ScheduleRecord, due: Due, now: datetime) -> None:
        if due.state is OccurrenceState.MISSED:
            late = (now - due.at).total_seconds()
            note = f"missed by {late:.0f} s (grace {schedule.grace_seconds} s): not sent"
            if self._ledger.schedules.record(schedule.id, due.at, due.state, now, note=note):
                log.warning("schedule %s: occurrence %s %s", schedule.id, due.at.isoformat(), note)
            return
        broadcast_id = occurrence_broadcast_id(schedule.id, due.at)
        if self._ledger.schedules.record(
            schedule.id, due.at, due.state, now, broadcast_id=broadcast_id
        ):
            self._send(schedule, due.at, now)

    def _send(self, schedule: ScheduleRecord, at: datetime, now: datetime) -> None:
        broadcast_id = occurrence_broadcast_id(schedule.id, at)
        try:
            result = self._producer.send(
                schedule.content,
                schedule.targets,
                content_type=schedule.content_type,
                broadcast_id=broadcast_id,
                send_at=at,
                source=f"schedule:{schedule.id}",
                now_if_past=True,
                parts=schedule.parts,  # its targets carry their variables: personal text too
            )
        except ValidationError as exc:
            # Sending again cannot help (e.g. a tenant's sign-in was deleted): say why, stop.
            self._ledger.schedules.finish(
                schedule.id, at, now, instead=OccurrenceState.FAILED, note=str(exc)
            )
            log.error("schedule %s: occurrence %s not sent: %s", schedule.id, at.isoformat(), exc)
            return
        self._ledger.schedules.finish(schedule.id, at, now)
        log.info(
            "schedule %s: launched %s as broadcast %s (%d deliveries)",
            schedule.id,
            at.isoformat(),
            broadcast_id,
            result.deliveries,
        )
