"""What is due and how late, with an injected ``now``: on time, late within the grace,
missed beyond it; occurrence broadcast ids; send times in the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from producer.scheduler.cron import Recurrence
from producer.scheduler.plan import (
    Timeliness,
    classify,
    due_occurrences,
    occurrence_broadcast_id,
)
from producer.sendtime import check_send_at, parse_instant
from threadcast import ids
from threadcast.errors import ValidationError
from threadcast.ledger.schedules import OccurrenceState

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (0, Timeliness.ON_TIME),
        (5, Timeliness.ON_TIME),
        (6, Timeliness.LATE),
        (900, Timeliness.LATE),
        (901, Timeliness.MISSED),
        (-3, Timeliness.ON_TIME),
    ],
)
def test_classify(delay: int, expected: Timeliness) -> None:
    assert classify(T0, T0 + delay * S, grace_seconds=900) is expected


def test_zero_grace_still_allows_the_on_time_tolerance() -> None:
    assert classify(T0, T0 + 2 * S, 0) is Timeliness.ON_TIME
    assert classify(T0, T0 + 10 * S, 0) is Timeliness.MISSED


def test_after_downtime_recent_ones_go_late_and_old_ones_are_missed() -> None:
    every_10_min = Recurrence.parse("*/10 * * * *", "Europe/Berlin")
    now = T0 + timedelta(hours=1, seconds=2)  # down since T0; grace 30 min
    due = due_occurrences(every_10_min, T0 - S, now, grace_seconds=1800)
    assert [d.at for d in due] == [T0 + timedelta(minutes=m) for m in range(0, 61, 10)]
    missed, late, on_time = OccurrenceState.MISSED, OccurrenceState.LATE, OccurrenceState.ON_TIME
    # 08:00-08:30 are more than 30 min old at 09:00:02; 08:40 and 08:50 within; 09:00 on time.
    assert [d.state for d in due] == [missed] * 4 + [late] * 2 + [on_time]


def test_nothing_is_due_twice_or_when_the_clock_reads_earlier() -> None:
    hourly = Recurrence.parse("0 * * * *", "UTC")
    assert due_occurrences(hourly, T0, T0 + 10 * S, 900) == []  # T0 itself was dealt with
    assert due_occurrences(hourly, T0, T0 - timedelta(hours=3), 900) == []


def test_catching_up_is_bounded_per_run() -> None:
    minutely = Recurrence.parse("* * * * *", "UTC")
    due = due_occurrences(minutely, T0, T0 + timedelta(days=1), 900, limit=50)
    assert len(due) == 50 and due[0].at == T0 + timedelta(minutes=1)


def test_occurrence_broadcast_id_is_deterministic_and_valid() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    broadcast_id = occurrence_broadcast_id("weekly-notes", at)
    assert broadcast_id == "sched-weekly-notes-20261201T080000Z"
    assert occurrence_broadcast_id("weekly-notes", at.astimezone(UTC)) == broadcast_id
    assert ids.broadcast_id("id", occurrence_broadcast_id("x" * 64, at))


def test_send_at_in_the_past_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        check_send_at("--at", T0 - 60 * S, T0)
    assert caught.value.field == "--at" and "--now-if-past" in str(caught.value)
    check_send_at("send_at", T0 - 60 * S, T0, now_if_past=True)
    check_send_at("send_at", T0 - 4 * S, T0)  # within the tolerance
    check_send_at("send_at", T0 + 60 * S, T0)
    check_send_at("send_at", None, T0)


def test_send_at_needs_an_offset() -> None:
    with pytest.raises(ValidationError, match="UTC offset"):
        check_send_at("send_at", datetime(2026, 12, 1, 9), T0)


def test_parse_instant() -> None:
    assert parse_instant("--at", "2026-12-01T09:00:00+01:00") == datetime(
        2026, 12, 1, 8, tzinfo=UTC
    )
    assert parse_instant("--at", "2026-12-01T08:00:00Z") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    for bad in ("2026-12-01T09:00:00", "tomorrow", "2026-13-01T09:00:00+01:00"):
        with pytest.raises(ValidationError) as caught:
            parse_instant("--at", bad)
        assert caught.value.field == "--at"
