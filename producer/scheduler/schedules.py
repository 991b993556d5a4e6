"""Recurring announcements from Python: add, list, pause, resume, delete, skip, look ahead.

    from producer.scheduler import Schedules

    with Schedules() as schedules:                       # settings from THREADCAST_* / .env
        schedule = schedules.add(
            "0 9 * * MON", "Europe/Berlin", "<p>Weekly notes</p>",
            [{"tenant": "…", "group": "…", "channel": "19:…@thread.tacv2"}],
        )
        print(schedule.id, schedules.next(schedule.id, count=3))

Everything is validated before anything is stored (the cron expression, the time zone, the
content, its message parts and every target exactly as a broadcast would be, each tenant
signed in, every target's variables for personal text); errors are ValidationErrors naming
the field and the value, NotFoundError for an unknown schedule id. The ``threadcast
scheduler`` process launches the occurrences, each with the schedule's parts (subject,
importance, cards, images, mentions) and its targets' variables.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import redis

from producer.client import CardInput, ImageInput, MentionInput, checked_variables, given_parts
from producer.scheduler.cron import Recurrence
from producer.scheduler.plan import occurrence_broadcast_id
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.schedules import (
    OccurrenceRecord,
    OccurrenceState,
    ScheduleRecord,
    ScheduleState,
)
from threadcast.message import Importance, MessageParts
from threadcast.settings import Settings, load_settings
from threadcast.tokencache import require_signed_in

_SCHEDULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_GRACE_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Upcoming:
    at: datetime  # UTC
    local: datetime  # the same instant in the schedule's zone
    skipped: bool


def check_schedule_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not _SCHEDULE_ID.fullmatch(value):  # $ allows a "\n"
        raise ValidationError(
            field,
            value,
            "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit",
        )
    return value


def _targets(raw: Iterable[Target | Mapping[str, object]]) -> tuple[Target, ...]:
    if isinstance(raw, (str, bytes, Mapping)):
        raise ValidationError("targets", raw, "must be a list of targets")
    parsed = (
        item if isinstance(item, Target) else Target.parse(f"targets[{i}]", item)
        for i, item in enumerate(raw)
    )
    return tuple(dict.fromkeys(parsed))  # the same channel twice is one target


def _grace(value: int | None, default: int) -> int:
    grace = default if value is None else value
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise ValidationError(
            "grace", value, f"must be whole seconds from 0 to {MAX_GRACE_SECONDS}"
        )
    return grace


class Schedules:
    """Recurring schedules in the ledger. Use as a context manager, or call :meth:`close`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.ledger = Ledger.open(self.settings.database_url)
        self._redis = redis.Redis.from_url(self.settings.redis_url)

    def add(
        self,
        cron: str,
        timezone: str,
        content: str,
        targets: Iterable[Target | Mapping[str, object]],
        *,
        content_type: str | ContentType = ContentType.HTML,
        schedule_id: str | None = None,
        grace: int | None = None,
        source: str = "python",
        now: datetime | None = None,
        subject: str | None = None,
        importance: str | Importance = Importance.NORMAL,
        cards: Iterable[CardInput] = (),
        images: Iterable[ImageInput] = (),
        mentions: Iterable[MentionInput] = (),
        parts: MessageParts | None = None,
    ) -> ScheduleRecord:
        """Validate and store a new active schedule; its first occurrence is the first after
        ``now``. ``grace``: seconds an occurrence may still go out late (default
        THREADCAST_SCHEDULE_GRACE). The message parts and personal text are as
        :meth:`producer.Producer.send` takes them: every occurrence sends them."""
        now = now or datetime.now(UTC)
        sid = _new_id() if schedule_id is None else check_schedule_id("schedule_id", schedule_id)
        recurrence = Recurrence.parse(cron, timezone)
        first = recurrence.next(now, 1)
        if not first:
            raise ValidationError("cron", cron, "never fires again")
        parts = given_parts(
            self.settings,
            parts,
            subject=subject,
            importance=importance,
            cards=cards,
            images=images,
            mentions=mentions,
        )
        listed = _targets(targets)
        probe = Broadcast(
            occurrence_broadcast_id(sid, first[0]),
            content,
            ContentType.parse("content_type", content_type),
            listed,
            source,
            parts=parts,
            personal=bool(listed) and listed[0].variables is not None,
        )
        for _ in checked_variables(probe, probe.targets):
            pass  # each target's variables fill in the personal text, or it is an error
        self._check_signed_in(probe.targets)
        record = ScheduleRecord(
            sid,
            recurrence.cron,
            timezone,
            probe.content,
            probe.content_type,
            probe.targets,
            source,
            ScheduleState.ACTIVE,
            _grace(grace, self.settings.schedule_grace),
            now,
            now,
            now,
            probe.parts,
            probe.personal,
        )
        self.ledger.schedules.add(record)
        return record

    def get(self, schedule_id: str) -> ScheduleRecord:
        return self.ledger.schedules.get(schedule_id)

    def list(self, *, include_deleted: bool = False) -> list[ScheduleRecord]:
        states = [ScheduleState.ACTIVE, ScheduleState.PAUSED]
        return self.ledger.schedules.by_state(
            [*states, ScheduleState.DELETED] if include_deleted else states
        )

    def pause(self, schedule_id: str) -> ScheduleRecord:
        return self._set(schedule_id, ScheduleState.PAUSED)

    def resume(self, schedule_id: str) -> ScheduleRecord:
        """Active again; occurrences that fell due while paused are not sent."""
        return self._set(schedule_id, ScheduleState.ACTIVE)

    def delete(self, schedule_id: str) -> ScheduleRecord:
        """Never fires again; the schedule and its occurrences stay on record."""
        return self._set(schedule_id, ScheduleState.DELETED)

    def next(
        self, schedule_id: str, count: int = 5, *, after: datetime | None = None
    ) -> builtins.list[Upcoming]:
        """The next ``count`` occurrences after ``after`` (default now), skipped ones marked."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise ValidationError("count", count, "must be from 1 to 1000")
        schedule = self.get(schedule_id)
        recurrence = Recurrence.parse(schedule.cron, schedule.timezone)
        start = max(after or datetime.now(UTC), schedule.checked_through)
        return [
            Upcoming(at, at.astimezone(recurrence.zone), self._skipped(schedule_id, at))
            for at in recurrence.next(start, count)
        ]

    def skip(self, schedule_id: str, at: datetime, *, now: datetime | None = None) -> bool:
        """Skip one occurrence before it fires; False if it was skipped already."""
        now = now or datetime.now(UTC)
        schedule = self.get(schedule_id)
        if schedule.state is ScheduleState.DELETED:
            raise ValidationError("schedule_id", schedule_id, "is deleted")
        _check_skippable(schedule, at, now)
        if self.ledger.schedules.record(schedule_id, at, OccurrenceState.SKIPPED, now):
            return True
        found = self.ledger.schedules.occurrence(schedule_id, at)
        if found is not None and found.state is OccurrenceState.SKIPPED:
            return False
        raise ValidationError("at", at.isoformat(), "has already fired")

    def history(self, schedule_id: str, limit: int = 20) -> builtins.list[OccurrenceRecord]:
        """Recorded occurrences (released, late, skipped, missed, failed), newest first."""
        self.get(schedule_id)
        return self.ledger.schedules.occurrences(schedule_id, limit)

    def _set(self, schedule_id: str, state: ScheduleState) -> ScheduleRecord:
        return self.ledger.schedules.set_state(schedule_id, state, datetime.now(UTC))

    def _skipped(self, schedule_id: str, at: datetime) -> bool:
        found = self.ledger.schedules.occurrence(schedule_id, at)
        return found is not None and found.state is OccurrenceState.SKIPPED

    def _check_signed_in(self, targets: tuple[Target, ...]) -> None:
        require_signed_in(self._redis, self.ledger.token_caches, targets)

    def close(self) -> None:
        self._redis.close()
        self.ledger.close()

    def __enter__(self) -> Schedules:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _check_skippable(schedule: ScheduleRecord, at: datetime, now: datetime) -> None:
    if at.tzinfo is None:
        raise ValidationError("at", at.isoformat(), "must include a UTC offset")
    recurrence = Recurrence.parse(schedule.cron, schedule.timezone)
    if not recurrence.fires_at(at):
        upcoming = ", ".join(t.isoformat() for t in recurrence.next(now, 3))
        raise ValidationError(
            "at",
            at.isoformat(),
            f"is not an occurrence of schedule {schedule.id} (next: {upcoming})",
        )
    if at <= max(now, schedule.checked_through):
        raise ValidationError("at", at.isoformat(), "has already fired (or is firing now)")
