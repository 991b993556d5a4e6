"""Recurring schedules and the record of each of their occurrences.

A schedule is stored as validated data (its cron expression, time zone, content and targets);
the arithmetic of when it fires lives with the scheduler (``producer/scheduler/cron.py``).
Each occurrence is recorded once: the row's primary key is (schedule, instant), so whoever
inserts it first -- the leader launching it, or an operator skipping it -- decides its fate.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from threadcast.contract import ContentType, Target
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import schedule_occurrences, schedules
from threadcast.message import MessageParts


class ScheduleState(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"  # kept for its history; never fires again


class OccurrenceState(enum.StrEnum):
    ON_TIME = "released"  # its broadcast was launched on time (the stored name)
    LATE = "late"  # created after its time, within the schedule's grace
    SKIPPED = "skipped"  # an operator skipped it before it fired
    MISSED = "missed"  # due longer ago than the grace (the scheduler was down): not sent
    FAILED = "failed"  # could not become a broadcast (the note says why)


#: Occurrences that become a broadcast.
SENDING = frozenset({OccurrenceState.ON_TIME, OccurrenceState.LATE})


@dataclass(frozen=True)
class ScheduleRecord:
    id: str
    cron: str
    timezone: str
    content: str
    content_type: ContentType
    targets: tuple[Target, ...]
    source: str
    state: ScheduleState
    grace_seconds: int
    checked_through: datetime
    created_at: datetime
    updated_at: datetime
    # Everything of each occurrence's message beside its body (stored once, as a broadcast's).
    parts: MessageParts = field(default_factory=MessageParts)
    # Content and subject are templates filled per delivery with each target's variables.
    personal: bool = False


@dataclass(frozen=True)
class ScheduleTiming:
    """What deciding whether a schedule is due needs (content and targets are read only
    when an occurrence is launched)."""

    id: str
    cron: str
    timezone: str
    grace_seconds: int
    checked_through: datetime


@dataclass(frozen=True)
class OccurrenceRecord:
    schedule_id: str
    at: datetime
    state: OccurrenceState
    broadcast_id: str | None
    recorded_at: datetime
    released_at: datetime | None
    note: str | None


def targets_json(targets: Sequence[Target]) -> str:
    """The stored form of validated targets: a JSON list of objects, keys sorted; a target's
    variables are extra keys of its object (as :meth:`Target.parse` reads them back)."""
    items = [
        {**(t.variables or {}), "tenant": t.tenant, "group": t.group, "channel": t.channel}
        for t in targets
    ]
    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _targets_from(text: str) -> tuple[Target, ...]:
    return tuple(Target.parse(f"targets[{i}]", item) for i, item in enumerate(json.loads(text)))


def _record(row: Any) -> ScheduleRecord:
    return ScheduleRecord(
        row.id,
        row.cron,
        row.timezone,
        row.content,
        ContentType(row.content_type),
        _targets_from(row.targets),
        row.source,
        ScheduleState(row.state),
        row.grace_seconds,
        row.checked_through,
        row.created_at,
        row.updated_at,
        MessageParts.from_json(row.parts),
        bool(row.personal),
    )


def _occurrence(row: Any) -> OccurrenceRecord:
    return OccurrenceRecord(
        row.schedule_id,
        row.occurrence_at,
        OccurrenceState(row.state),
        row.broadcast_id,
        row.recorded_at,
        row.released_at,
        row.note,
    )


class ScheduleBook:
    """Schedules and occurrences in the ledger; every write is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, record: ScheduleRecord) -> None:
        """Store a new schedule; an id already in use is refused (nothing is written)."""
        values = {
            "id": record.id,
            "cron": record.cron,
            "timezone": record.timezone,
            "content": record.content,
            "content_type": record.content_type.value,
            "targets": targets_json(record.targets),
            "target_count": len(record.targets),
            "source": record.source,
            "state": record.state.value,
            "grace_seconds": record.grace_seconds,
            "checked_through": record.checked_through,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "parts": record.parts.to_json(),
            "personal": record.personal,
        }
        try:
            with self._engine.begin() as conn:
                if self._find(conn, record.id) is not None:
                    raise _id_in_use(record.id)
                conn.execute(insert(schedules).values(**values))
        except IntegrityError:
            raise _id_in_use(record.id) from None

    def get(self, schedule_id: str) -> ScheduleRecord:
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = self._find(conn, schedule_id)
        if row is None:
            raise NotFoundError(f"no schedule with id {schedule_id!r}")
        return _record(row)

    def by_state(
        self, states: Sequence[ScheduleState] = tuple(ScheduleState)
    ) -> list[ScheduleRecord]:
        """Schedules in any of ``states``, oldest first."""
        query = (
            select(schedules)
            .where(schedules.c.state.in_([s.value for s in states]))
            .order_by(schedules.c.created_at, schedules.c.id)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def active_timings(self) -> list[ScheduleTiming]:
        """Every active schedule's timing, oldest first."""
        query = (
            select(
                schedules.c.id,
                schedules.c.cron,
                schedules.c.timezone,
                schedules.c.grace_seconds,
                schedules.c.checked_through,
            )
            .where(schedules.c.state == ScheduleState.ACTIVE.value)
            .order_by(schedules.c.created_at, schedules.c.id)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [ScheduleTiming(*row) for row in conn.execute(query).all()]

    def set_state(self, schedule_id: str, state: ScheduleState, now: datetime) -> ScheduleRecord:
        """Pause, resume or delete. Resuming moves ``checked_through`` up to ``now``: what
        fell due while paused is not sent. A deleted schedule stays deleted."""
        with self._engine.begin() as conn:
            row = self._find(conn, schedule_id)
            if row is None:
                raise NotFoundError(f"no schedule with id {schedule_id!r}")
            if row.state == ScheduleState.DELETED and state is not ScheduleState.DELETED:
                raise ValidationError("schedule_id", schedule_id, "is deleted")
            values: dict[str, Any] = {"state": state.value, "updated_at": now}
            if state is ScheduleState.ACTIVE and row.state == ScheduleState.PAUSED:
                values["checked_through"] = max(row.checked_through, now)
            conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))
            return _record(self._find(conn, schedule_id))

    def advance(self, schedule_id: str, through: datetime, now: datetime) -> None:
        """Every occurrence up to ``through`` has been dealt with (never moves back)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(schedules)
                .where(schedules.c.id == schedule_id)
                .where(schedules.c.checked_through < through)
                .values(checked_through=through, updated_at=now)
            )

    def record(
        self,
        schedule_id: str,
        at: datetime,
        state: OccurrenceState,
        now: datetime,
        *,
        broadcast_id: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Record the occurrence's fate once: False (writing nothing) if it was recorded
        before -- launched by another scheduler, or skipped by an operator."""
        values = {
            "schedule_id": schedule_id,
            "occurrence_at": at,
            "state": state.value,
            "broadcast_id": broadcast_id,
            "recorded_at": now,
            "note": note,
        }
        try:
            with self._engine.begin() as conn:
                if self._occurrence_row(conn, schedule_id, at) is not None:
                    return False
                conn.execute(insert(schedule_occurrences).values(**values))
                return True
        except IntegrityError:
            return False  # a concurrent writer recorded it first (PostgreSQL)

    def finish(
        self,
        schedule_id: str,
        at: datetime,
        now: datetime,
        *,
        instead: OccurrenceState | None = None,
        note: str | None = None,
    ) -> None:
        """The occurrence's broadcast exists and was published -- or it was not sent after
        all, and the occurrence becomes ``instead`` (failed, missed) with ``note``."""
        values: dict[str, Any] = {"released_at": now}
        if instead is not None:
            values = {"state": instead.value, "note": note}
        with self._engine.begin() as conn:
            conn.execute(
                update(schedule_occurrences)
                .where(schedule_occurrences.c.schedule_id == schedule_id)
                .where(schedule_occurrences.c.occurrence_at == at)
                .values(**values)
            )

    def unfinished(self) -> list[OccurrenceRecord]:
        """Occurrences recorded for launch whose broadcast was not confirmed published (a
        scheduler died in between): the next leader finishes them."""
        query = (
            select(schedule_occurrences)
            .where(schedule_occurrences.c.state.in_([s.value for s in SENDING]))
            .where(schedule_occurrences.c.released_at.is_(None))
            .order_by(schedule_occurrences.c.occurrence_at)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [_occurrence(row) for row in conn.execute(query).all()]

    def occurrences(
        self, schedule_id: str, limit: int = 20, since: datetime | None = None
    ) -> list[OccurrenceRecord]:
        """The schedule's recorded occurrences, newest first (or all from ``since`` on)."""
        query = select(schedule_occurrences).where(
            schedule_occurrences.c.schedule_id == schedule_id
        )
        if since is not None:
            query = query.where(schedule_occurrences.c.occurrence_at >= since)
        query = query.order_by(schedule_occurrences.c.occurrence_at.desc()).limit(limit)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [_occurrence(row) for row in conn.execute(query).all()]

    def occurrence(self, schedule_id: str, at: datetime) -> OccurrenceRecord | None:
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = self._occurrence_row(conn, schedule_id, at)
        return None if row is None else _occurrence(row)

    @staticmethod
    def _find(conn: Connection, schedule_id: str) -> Any:
        return conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()

    @staticmethod
    def _occurrence_row(conn: Connection, schedule_id: str, at: datetime) -> Any:
        return conn.execute(
            select(schedule_occurrences)
            .where(schedule_occurrences.c.schedule_id == schedule_id)
            .where(schedule_occurrences.c.occurrence_at == at)
        ).first()


def _id_in_use(schedule_id: str) -> ValidationError:
    return ValidationError("schedule_id", schedule_id, "is already used by another schedule")
