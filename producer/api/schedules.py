"""``/v1/schedules``: recurring announcements with their next occurrences; pause, resume,
and skip one occurrence -- what ``threadcast schedule list/show/pause/resume/skip`` do
(producer/scheduler/schedules.py), with the broadcasts' ownership rule: a key sees and acts
on the schedules whose source is its name, an operator key on every one; another's schedule
answers exactly as an unknown id (404).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from producer.api.auth import caller
from producer.api.errors import COMMON_RESPONSES
from producer.api.models import ErrorBody
from producer.api.services import Services, services
from producer.scheduler.schedules import Schedules, Upcoming, check_schedule_id
from producer.sendtime import require_offset
from threadcast.apikeys import ApiKey
from threadcast.errors import NotFoundError
from threadcast.ledger.schedules import OccurrenceRecord, ScheduleRecord, ScheduleState

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=COMMON_RESPONSES)
Caller = Annotated[ApiKey, Depends(caller)]
Store = Annotated[Services, Depends(services)]
ScheduleId = Annotated[str, Path(description="the schedule id")]
NO_SCHEDULE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no schedule with this id"}
}
UPCOMING = 3
HISTORY = 5


class UpcomingOut(BaseModel):
    at: datetime = Field(description="UTC")
    local: datetime = Field(description="the same instant in the schedule's time zone")
    skipped: bool


class OccurrenceOut(BaseModel):
    at: datetime
    state: str = Field(description="released, late, skipped, missed or failed")
    broadcast_id: str | None
    note: str | None


class ScheduleOut(BaseModel):
    id: str
    state: str = Field(description="active, paused or deleted")
    cron: str
    timezone: str
    content_type: str
    parts: str = Field(description="what each message carries beside its body")
    personal: bool
    targets: int
    source: str
    grace_seconds: int
    created_at: datetime
    next: list[UpcomingOut] = Field(
        description=f"the next {UPCOMING} occurrences (skipped ones marked); empty unless active"
    )
    occurrences: list[OccurrenceOut] = Field(
        description=f"the latest {HISTORY} recorded occurrences, newest first"
    )


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class SkipIn(BaseModel):
    at: datetime = Field(description="the occurrence, with a UTC offset (one of `next`)")


class Skipped(BaseModel):
    schedule_id: str
    at: datetime
    skipped: bool = Field(description="false: it was skipped already")


@contextmanager
def _opened(store: Services) -> Iterator[Schedules]:
    with Schedules(store.settings) as schedules:
        yield schedules


def _mine(schedules: Schedules, key: ApiKey, schedule_id: str) -> ScheduleRecord:
    schedule_id = check_schedule_id("schedule_id", schedule_id)
    record = schedules.get(schedule_id)
    if not key.owns(record.source):
        raise NotFoundError(f"no schedule with id {schedule_id!r}")
    return record


def _out(schedules: Schedules, record: ScheduleRecord) -> ScheduleOut:
    active = record.state is ScheduleState.ACTIVE
    upcoming: list[Upcoming] = schedules.next(record.id, UPCOMING) if active else []
    history: list[OccurrenceRecord] = schedules.history(record.id, HISTORY)
    return ScheduleOut(
        id=record.id,
        state=record.state.value,
        cron=record.cron,
        timezone=record.timezone,
        content_type=record.content_type.value,
        parts=record.parts.describe(),
        personal=record.personal,
        targets=len(record.targets),
        source=record.source,
        grace_seconds=record.grace_seconds,
        created_at=record.created_at,
        next=[UpcomingOut(at=u.at, local=u.local, skipped=u.skipped) for u in upcoming],
        occurrences=[
            OccurrenceOut(at=o.at, state=o.state.value, broadcast_id=o.broadcast_id, note=o.note)
            for o in history
        ],
    )


@router.get("", response_model=ScheduleList, summary="Active and paused schedules, next times")
def listing(key: Caller, store: Store) -> ScheduleList:
    with _opened(store) as schedules:
        mine = [r for r in schedules.list() if key.owns(r.source)]
        return ScheduleList(schedules=[_out(schedules, r) for r in mine])


@router.get(
    "/{schedule_id}",
    response_model=ScheduleOut,
    responses=NO_SCHEDULE,
    summary="One schedule, its next occurrences and its latest recorded ones",
)
def read(schedule_id: ScheduleId, key: Caller, store: Store) -> ScheduleOut:
    with _opened(store) as schedules:
        return _out(schedules, _mine(schedules, key, schedule_id))


def _change(
    store: Services, key: ApiKey, schedule_id: str, how: Callable[[Schedules, str], object]
) -> ScheduleOut:
    with _opened(store) as schedules:
        record = _mine(schedules, key, schedule_id)
        how(schedules, record.id)
        return _out(schedules, schedules.get(record.id))


@router.post(
    "/{schedule_id}/pause",
    response_model=ScheduleOut,
    responses=NO_SCHEDULE,
    summary="Pause: no occurrence fires until it is resumed",
)
def pause(schedule_id: ScheduleId, key: Caller, store: Store) -> ScheduleOut:
    return _change(store, key, schedule_id, Schedules.pause)


@router.post(
    "/{schedule_id}/resume",
    response_model=ScheduleOut,
    responses=NO_SCHEDULE,
    summary="Resume: occurrences that fell due while paused are not sent",
)
def resume(schedule_id: ScheduleId, key: Caller, store: Store) -> ScheduleOut:
    return _change(store, key, schedule_id, Schedules.resume)


@router.post(
    "/{schedule_id}/skip",
    response_model=Skipped,
    responses=NO_SCHEDULE,
    summary="Skip one occurrence before it fires",
)
def skip(schedule_id: ScheduleId, body: SkipIn, key: Caller, store: Store) -> Skipped:
    at = require_offset("at", body.at)
    with _opened(store) as schedules:
        record = _mine(schedules, key, schedule_id)
        new = schedules.skip(record.id, at)
    return Skipped(schedule_id=record.id, at=at, skipped=new)
