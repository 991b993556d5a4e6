"""Schedule arithmetic: cron expressions in a time zone, DST changes, bad input. Pure: every
test passes the instant it computes from; no clock is read."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from producer.scheduler.cron import Recurrence, instant_of
from threadcast.errors import ValidationError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# 2026's transitions: Berlin 29 Mar 02:00 CET -> 03:00 CEST, 25 Oct 03:00 CEST -> 02:00 CET;
# New York 8 Mar 02:00 EST -> 03:00 EDT, 1 Nov 02:00 EDT -> 01:00 EST.
BERLIN_SPRING, BERLIN_FALL = date(2026, 3, 29), date(2026, 10, 25)
NY_SPRING, NY_FALL = date(2026, 3, 8), date(2026, 11, 1)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def on_day(recurrence: Recurrence, day: date) -> list[datetime]:
    """Every occurrence whose local date is ``day``, in local time."""
    start = datetime.combine(day - timedelta(days=1), time(12), recurrence.zone)
    found = recurrence.between(start, start + timedelta(days=3), 500)
    return [
        at.astimezone(recurrence.zone)
        for at in found
        if at.astimezone(recurrence.zone).date() == day
    ]


def test_weekly_monday_nine_in_berlin() -> None:
    monday = Recurrence.parse("0 9 * * MON", "Europe/Berlin")
    found = monday.next(datetime(2026, 11, 29, 12, tzinfo=UTC), 3)
    assert found == [
        datetime(2026, 11, 30, 8, tzinfo=UTC),
        datetime(2026, 12, 7, 8, tzinfo=UTC),
        datetime(2026, 12, 14, 8, tzinfo=UTC),
    ]
    assert all(at.tzinfo is UTC for at in found)


def test_occurrences_are_strictly_after_the_instant() -> None:
    daily = Recurrence.parse("0 9 * * *", "UTC")
    nine = datetime(2026, 5, 1, 9, tzinfo=UTC)
    assert daily.next(nine, 1) == [nine + timedelta(days=1)]
    assert daily.next(nine - timedelta(microseconds=1), 1) == [nine]
    assert daily.between(nine - timedelta(days=2), nine, 10) == [nine - timedelta(days=1), nine]
    assert daily.between(nine, nine - timedelta(days=2), 10) == []  # a clock read backwards


def test_between_honours_its_limit() -> None:
    minutely = Recurrence.parse("* * * * *", "UTC")
    start = datetime(2026, 5, 1, tzinfo=UTC)
    assert len(minutely.between(start, start + timedelta(hours=5), 7)) == 7


def test_seconds_field_for_sub_minute_schedules() -> None:
    every_20s = Recurrence.parse("*/20 * * * * *", "Europe/Berlin")
    start = datetime(2026, 5, 1, 12, 0, 5, tzinfo=UTC)
    assert [at.second for at in every_20s.next(start, 4)] == [20, 40, 0, 20]


def test_the_stored_form_is_normalised() -> None:
    assert Recurrence.parse("  0   9 * *  mon ", "UTC").cron == "0 9 * * mon"


def test_fires_at() -> None:
    monday = Recurrence.parse("0 9 * * MON", "Europe/Berlin")
    assert monday.fires_at(local(BERLIN, 2026, 12, 7, 9))
    assert not monday.fires_at(local(BERLIN, 2026, 12, 7, 9, 1))
    assert not monday.fires_at(local(BERLIN, 2026, 12, 8, 9))


@pytest.mark.parametrize(
    "cron",
    [
        "",
        "0 9 * *",
        "61 9 * * *",
        "0 25 * * *",
        "0 9 * * FUNDAY",
        "*/0 * * * *",
        "0 9 31 2 *",
        "a b c d e",
        "0 9 * * * * *",
        "x" * 201,
    ],
)
def test_an_invalid_cron_expression_is_named(cron: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Recurrence.parse(cron, "Europe/Berlin", cron_field="--cron")
    assert caught.value.field == "--cron"
    assert caught.value.value == " ".join(cron.split()) or caught.value.value == cron


@pytest.mark.parametrize("tz", ["Europe/Berlinn", "Mars/Olympus", "", "../etc/passwd", "EST+5"])
def test_an_unknown_time_zone_is_named(tz: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Recurrence.parse("0 9 * * *", tz, tz_field="--tz")
    assert caught.value.field == "--tz" and caught.value.value == tz
    assert "time zone" in str(caught.value)


# --- DST: a time the clocks skip fires once, right after the jump ------------------------


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        (BERLIN, BERLIN_SPRING, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # 03:00 CEST
        (NEW_YORK, NY_SPRING, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # 03:00 EDT
    ],
)
def test_spring_forward_0230_fires_once_at_the_end_of_the_gap(
    tz: ZoneInfo, day: date, expected: datetime
) -> None:
    job = Recurrence("30 2 * * *", tz)
    [fired] = on_day(job, day)
    assert fired == expected and fired.astimezone(tz).time() == time(3, 0)
    assert [t.time() for t in on_day(job, day + timedelta(days=1))] == [time(2, 30)]
    assert [t.time() for t in on_day(job, day - timedelta(days=1))] == [time(2, 30)]


@pytest.mark.parametrize(("tz", "day"), [(BERLIN, BERLIN_SPRING), (NEW_YORK, NY_SPRING)])
def test_spring_forward_several_skipped_times_fire_once(tz: ZoneInfo, day: date) -> None:
    # 02:00, 02:15, 02:30, 02:45 do not exist that day: all land on 03:00, sent once.
    assert [t.time() for t in on_day(Recurrence("*/15 2 * * *", tz), day)] == [time(3, 0)]
    # 02:00 (skipped) and 03:00 are the same instant that day: one announcement.
    assert [t.time() for t in on_day(Recurrence("0 2,3 * * *", tz), day)] == [time(3, 0)]


@pytest.mark.parametrize(
    ("tz", "day", "wall", "expected_utc"),
    [
        (BERLIN, BERLIN_FALL, time(2, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # CEST
        (NEW_YORK, NY_FALL, time(1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # EDT
    ],
)
def test_fall_back_repeated_time_fires_once_at_its_first_pass(
    tz: ZoneInfo, day: date, wall: time, expected_utc: datetime
) -> None:
    job = Recurrence(f"{wall.minute} {wall.hour} * * *", tz)
    assert [t.astimezone(UTC) for t in on_day(job, day)] == [expected_utc]


@pytest.mark.parametrize(("tz", "day", "hour"), [(BERLIN, BERLIN_FALL, 2), (NEW_YORK, NY_FALL, 1)])
def test_fall_back_minute_wildcard_in_the_repeated_hour_is_not_doubled(
    tz: ZoneInfo, day: date, hour: int
) -> None:
    # Debian cron (and cronsim's zone-aware mode) would run these in both passes.
    fired = on_day(Recurrence(f"*/30 {hour} * * *", tz), day)
    assert [t.time() for t in fired] == [time(hour, 0), time(hour, 30)]
    assert len({t.utcoffset() for t in fired}) == 1  # all in the first (summer-time) pass


def test_starting_inside_the_repeated_hour_does_not_fire_its_first_pass_again() -> None:
    job = Recurrence("30 1 * * *", NEW_YORK)
    second_pass = local(NEW_YORK, 2026, 11, 1, 1, 10, fold=1)  # 06:10 UTC, after 01:30 EDT
    assert job.next(second_pass, 1) == [datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("tz", "transitions"),
    [(BERLIN, {BERLIN_SPRING, BERLIN_FALL}), (NEW_YORK, {NY_SPRING, NY_FALL})],
)
def test_weekly_sunday_nine_keeps_its_local_time_across_both_transitions(
    tz: ZoneInfo, transitions: set[date]
) -> None:
    job = Recurrence("0 9 * * SUN", tz)  # 2026's transitions all fall on Sundays
    fired = job.next(datetime(2026, 1, 1, tzinfo=UTC), 52)
    assert [t.astimezone(tz).time() for t in fired] == [time(9, 0)] * 52
    assert len(set(fired)) == 52
    assert all(
        b - a in (timedelta(days=7), timedelta(days=7, hours=-1), timedelta(days=7, hours=1))
        for a, b in pairwise(fired)
    )
    assert transitions <= {t.astimezone(tz).date() for t in fired}


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("cron", ["30 2 * * *", "30 1 * * *", "*/30 1-3 * * *", "0 * * * *"])
def test_over_a_whole_year_every_wall_time_fires_exactly_once(tz: ZoneInfo, cron: str) -> None:
    """Oracle: each day, each wall-clock time the expression names fires once -- at that
    time, or (when the clocks skip it) at the first instant after the jump."""
    job = Recurrence(cron, tz)
    span = job.between(datetime(2025, 12, 30, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC), 20000)
    assert len(span) == len(set(span)) and span == sorted(span)
    fired = {at for at in span if at.astimezone(tz).year == 2026}
    expected = {
        instant_of(datetime.combine(day, t), tz)
        for day in (date(2026, 1, 1) + timedelta(days=n) for n in range(365))
        for t in _wall_times(cron)
    }
    assert fired == expected


def _wall_times(cron: str) -> list[time]:
    minute, hour = cron.split()[:2]
    minutes = range(0, 60, 30) if minute == "*/30" else [int(minute)]
    if hour == "*":
        hours = range(24)
    elif "-" in hour:
        low, high = map(int, hour.split("-"))
        hours = range(low, high + 1)
    else:
        hours = range(int(hour), int(hour) + 1)
    return [time(h, m) for h in hours for m in minutes]


def test_instant_of_maps_gap_and_fold() -> None:
    assert instant_of(datetime(2026, 3, 29, 2, 30), BERLIN) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert instant_of(datetime(2026, 10, 25, 2, 30), BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert instant_of(datetime(2026, 7, 1, 9), BERLIN) == datetime(2026, 7, 1, 7, tzinfo=UTC)
