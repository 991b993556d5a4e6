"""The scheduling side of the ledger on every backend: schedules, once-only occurrence records,
and releasing one-off broadcasts (never a cancelled one, never twice)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.launches import MISSED_CODE, LaunchState
from threadcast.ledger.schedules import OccurrenceState, ScheduleRecord, ScheduleState

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TARGETS = (Target(T, G, "19:a@thread.tacv2"), Target(T, G, "19:b@thread.tacv2"))


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


def schedule(sid: str = "weekly") -> ScheduleRecord:
    return ScheduleRecord(
        sid,
        "0 9 * * MON",
        "Europe/Berlin",
        "<p>notes</p>",
        ContentType.HTML,
        TARGETS,
        "test",
        ScheduleState.ACTIVE,
        900,
        NOW,
        NOW,
        NOW,
    )


def scheduled_broadcast(ledger: Ledger, bid: str, send_at: datetime) -> None:
    b = Broadcast(bid, "<p>later</p>", ContentType.HTML, TARGETS, "test", send_at)
    assert ledger.broadcasts.add(b, b.deliveries(), NOW)


def test_schedules_round_trip_watermark_and_states(ledger: Ledger) -> None:
    ledger.schedules.add(schedule())
    assert ledger.schedules.get("weekly") == schedule()
    with pytest.raises(ValidationError, match="already used"):
        ledger.schedules.add(replace(schedule(), cron="0 10 * * *"))
    assert ledger.schedules.get("weekly").cron == "0 9 * * MON"
    with pytest.raises(NotFoundError, match="nope"):
        ledger.schedules.get("nope")
    with pytest.raises(NotFoundError, match="nope"):
        ledger.schedules.set_state("nope", ScheduleState.PAUSED, NOW)
    # The watermark never moves back.
    ledger.schedules.advance("weekly", NOW + timedelta(hours=2), NOW)
    ledger.schedules.advance("weekly", NOW + timedelta(hours=1), NOW)
    assert ledger.schedules.get("weekly").checked_through == NOW + timedelta(hours=2)
    assert [t.id for t in ledger.schedules.active_timings()] == ["weekly"]
    # Pause/resume moves it to the resume time; delete is final.
    later = NOW + timedelta(days=10)
    assert ledger.schedules.set_state("weekly", ScheduleState.PAUSED, later).state == "paused"
    assert ledger.schedules.by_state([ScheduleState.ACTIVE]) == []
    resumed = ledger.schedules.set_state("weekly", ScheduleState.ACTIVE, later)
    assert resumed.checked_through == later  # what fell due while paused is not sent
    ledger.schedules.set_state("weekly", ScheduleState.DELETED, later)
    with pytest.raises(ValidationError, match="deleted"):
        ledger.schedules.set_state("weekly", ScheduleState.ACTIVE, later)


def test_an_occurrence_is_recorded_once_and_the_first_writer_wins(ledger: Ledger) -> None:
    ledger.schedules.add(schedule())
    at = NOW + timedelta(days=1)
    assert ledger.schedules.record("weekly", at, OccurrenceState.SKIPPED, NOW)
    assert not ledger.schedules.record("weekly", at, OccurrenceState.ON_TIME, NOW, broadcast_id="x")
    assert ledger.schedules.occurrence("weekly", at).state is OccurrenceState.SKIPPED  # type: ignore[union-attr]
    at2 = at + timedelta(days=7)
    assert ledger.schedules.record("weekly", at2, OccurrenceState.LATE, NOW, broadcast_id="b2")
    assert [o.at for o in ledger.schedules.unfinished()] == [at2]
    ledger.schedules.finish("weekly", at2, NOW)
    assert ledger.schedules.unfinished() == []
    assert [o.state for o in ledger.schedules.occurrences("weekly")] == ["late", "skipped"]


def test_release_moves_scheduled_to_queued_once_never_if_cancelled(ledger: Ledger) -> None:
    due_at = NOW + timedelta(hours=1)
    scheduled_broadcast(ledger, "later", due_at)
    assert ledger.launches.due(due_at - timedelta(seconds=1)) == []
    [due] = ledger.launches.due(due_at)
    assert (due.id, due.send_at) == ("later", due_at)
    assert ledger.launches.launch("later", due_at, LaunchState.ON_TIME, due_at) == 2
    assert ledger.broadcasts.counts("later")["queued"] == 2
    assert ledger.launches.launch("later", due_at, LaunchState.ON_TIME, due_at) == 0
    assert ledger.launches.due(due_at + timedelta(hours=1)) == []
    assert ledger.launches.unpublished() == ["later"]
    assert len(list(ledger.broadcasts.queued_messages("later"))) == 2
    ledger.launches.mark_published("later", due_at)
    assert ledger.launches.unpublished() == []
    record = ledger.launches.get("later")
    assert record is not None and record.state is LaunchState.ON_TIME
    # A cancelled broadcast is never released.
    scheduled_broadcast(ledger, "called-off", due_at)
    assert ledger.broadcasts.cancel("called-off", NOW) == 2
    assert ledger.launches.due(due_at) == []
    assert ledger.launches.launch("called-off", due_at, LaunchState.ON_TIME, due_at) == 0
    assert ledger.broadcasts.counts("called-off")["cancelled"] == 2
    assert ledger.launches.get("called-off") is None


def test_expire_cancels_and_records_a_missed_release(ledger: Ledger) -> None:
    due_at = NOW + timedelta(hours=1)
    scheduled_broadcast(ledger, "stale", due_at)
    assert ledger.launches.expire("stale", due_at, due_at + timedelta(days=1), "missed") == 2
    counts = ledger.broadcasts.counts("stale")
    assert counts["cancelled"] == 2 and counts["scheduled"] == 0
    record = ledger.launches.get("stale")
    assert record is not None and record.state is LaunchState.MISSED
    assert ledger.launches.unpublished() == []
    with ledger.engine.connect() as conn:
        codes = conn.exec_driver_sql(
            "SELECT DISTINCT last_error_code FROM deliveries WHERE broadcast_id = 'stale'"
        ).scalars()
        assert list(codes) == [MISSED_CODE]
