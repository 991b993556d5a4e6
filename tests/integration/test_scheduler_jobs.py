"""The scheduler's jobs in-process, on every backend with a real Redis, driven by an injected
clock: one-off releases (due, not yet due, cancelled, missed, crash between ledger and
publish) and recurring occurrences (catch-up after downtime, skip, two schedulers at once,
a crash mid-release, a tenant whose sign-in vanished)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from producer.client import Producer
from producer.scheduler import Schedules
from producer.scheduler.oneoff import ExpireMissed, LaunchDue
from producer.scheduler.plan import occurrence_broadcast_id
from producer.scheduler.recurring import LaunchOccurrences
from threadcast.contract import DeliveryMessage
from threadcast.ledger import Ledger
from threadcast.ledger.launches import LaunchState
from threadcast.ledger.schedules import OccurrenceState
from threadcast.ledger.schema import broadcasts
from threadcast.lifecycle import Publisher
from threadcast.settings import Settings

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
TARGETS = [{"tenant": T, "group": G, "channel": f"19:c{i}@thread.tacv2"} for i in range(3)]
GRACE = 1800


class CountingPublisher(Publisher):
    """The real publisher, counting what went through it."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.published = 0

    def publish(self, messages: Iterable[DeliveryMessage]) -> int:
        count = super().publish(messages)
        self.published += count
        return count


@dataclass
class Env:
    settings: Settings
    ledger: Ledger
    producer: Producer
    publisher: CountingPublisher


@pytest.fixture
def env(database_url: str, clean_redis: redis.Redis, redis_url: str) -> Iterator[Env]:
    settings = Settings(redis_url=redis_url, database_url=database_url, schedule_grace=GRACE)
    ledger = Ledger.open(database_url)
    ledger.token_caches.save(T, "ciphertext: signed in", datetime.now(UTC))
    producer, publisher = Producer(settings), CountingPublisher(redis_url)
    yield Env(settings, ledger, producer, publisher)
    publisher.close()
    producer.close()
    ledger.close()


def one_off(env: Env, send_at: datetime) -> str:
    result = env.producer.send("<p>later</p>", TARGETS, send_at=send_at)
    assert result.scheduled and result.published == 0
    return result.broadcast_id


def check_a_one_off_is_released_when_due_and_published_once(env: Env) -> None:
    due_at = datetime.now(UTC) + timedelta(hours=1)
    bid = one_off(env, due_at)
    job = LaunchDue(env.ledger, env.publisher, GRACE)
    job.run(due_at - timedelta(seconds=1))
    assert env.ledger.broadcasts.counts(bid)["scheduled"] == 3 and env.publisher.published == 0
    job.run(due_at + timedelta(seconds=0.3))
    assert env.ledger.broadcasts.counts(bid)["queued"] == 3 and env.publisher.published == 3
    job.run(due_at + timedelta(seconds=1))  # idempotent: nothing again
    assert env.publisher.published == 3
    record = env.ledger.launches.get(bid)
    assert record is not None and record.state is LaunchState.ON_TIME and record.published_at


def test_late_within_grace_is_marked_late_and_beyond_it_missed(env: Env) -> None:
    due_at = datetime.now(UTC) + timedelta(hours=1)
    late, stale = one_off(env, due_at), one_off(env, due_at + timedelta(minutes=1))
    now = due_at + timedelta(minutes=1, seconds=GRACE + 30)  # `late` is beyond the grace too
    LaunchDue(env.ledger, env.publisher, GRACE).run(now)
    assert env.ledger.launches.get(late) is None  # not this job's: too old
    ExpireMissed(env.ledger, GRACE).run(now)
    for bid in (late, stale):
        record = env.ledger.launches.get(bid)
        assert record is not None and record.state is LaunchState.MISSED
        assert env.ledger.broadcasts.counts(bid)["cancelled"] == 3
    assert env.producer.retry(stale, ["cancelled"]) == 3  # an operator sends it anyway
    fresh = one_off(env, now + timedelta(minutes=5))
    LaunchDue(env.ledger, env.publisher, GRACE).run(now + timedelta(minutes=10))
    record = env.ledger.launches.get(fresh)
    assert record is not None and record.state is LaunchState.LATE
    assert env.publisher.published == 3
    ExpireMissed(env.ledger, GRACE).run(now + timedelta(days=1))  # the retried one stays queued
    assert env.ledger.broadcasts.counts(stale)["queued"] == 3


def check_a_cancelled_one_off_is_never_released(env: Env) -> None:
    due_at = datetime.now(UTC) + timedelta(hours=1)
    bid = one_off(env, due_at)
    assert env.producer.cancel(bid) == 3
    LaunchDue(env.ledger, env.publisher, GRACE).run(due_at + timedelta(seconds=1))
    ExpireMissed(env.ledger, GRACE).run(due_at + timedelta(days=1))
    assert env.ledger.broadcasts.counts(bid)["cancelled"] == 3
    assert env.ledger.launches.get(bid) is None and env.publisher.published == 0


def check_a_release_whose_publisher_died_is_published_by_the_next_leader(env: Env) -> None:
    due_at = datetime.now(UTC) + timedelta(hours=1)
    bid = one_off(env, due_at)
    # The dead leader committed the ledger transition, then died before publishing.
    assert env.ledger.launches.launch(bid, due_at, LaunchState.ON_TIME, due_at) == 3
    LaunchDue(env.ledger, env.publisher, GRACE).run(due_at + timedelta(seconds=2))
    assert env.publisher.published == 3 and env.ledger.launches.unpublished() == []


def check_id(check: Callable[[Env], None]) -> str:
    return check.__name__.removeprefix("check_")


@pytest.mark.parametrize(
    "check",
    [
        check_a_one_off_is_released_when_due_and_published_once,
        check_a_cancelled_one_off_is_never_released,
        check_a_release_whose_publisher_died_is_published_by_the_next_leader,
    ],
    ids=check_id,
)
def test_one_off_releases(env: Env, check: Callable[[Env], None]) -> None:
    check(env)


# --- recurring ----------------------------------------------------------------------------


def add_schedule(env: Env, cron: str, created: datetime, grace: int = GRACE) -> str:
    with Schedules(env.settings) as schedules:
        sid = f"s{uuid.uuid4().hex[:8]}"
        schedules.add(
            cron,
            "Europe/Berlin",
            "<p>every</p>",
            TARGETS,
            schedule_id=sid,
            grace=grace,
            now=created,
        )
    return sid


def states(env: Env, sid: str) -> list[str]:
    return [o.state.value for o in reversed(env.ledger.schedules.occurrences(sid, 1000))]


def broadcast_count(env: Env, sid: str) -> int:
    with env.ledger.engine.connect() as conn:
        query = select(func.count()).where(broadcasts.c.source == f"schedule:{sid}")
        return int(conn.execute(query).scalar_one())


def ten_minutes_ago_floor() -> datetime:
    now = datetime.now(UTC) - timedelta(hours=3)
    return now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)


def test_after_downtime_recent_occurrences_go_late_and_old_ones_are_missed(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "*/10 * * * *", created=t0 - timedelta(seconds=1))
    job = LaunchOccurrences(env.ledger, env.producer)
    now = t0 + timedelta(hours=1, seconds=2)
    job.run(now)
    assert states(env, sid) == ["missed"] * 4 + ["late"] * 2 + ["released"]
    assert broadcast_count(env, sid) == 3
    on_time = occurrence_broadcast_id(sid, t0 + timedelta(hours=1))
    assert env.ledger.broadcasts.counts(on_time)["queued"] == 3
    assert env.ledger.schedules.get(sid).checked_through == t0 + timedelta(hours=1)
    job.run(now)  # the same clock reading again
    job.run(now - timedelta(minutes=30))  # the clock re-read earlier
    assert len(states(env, sid)) == 7 and broadcast_count(env, sid) == 3


def test_a_skipped_occurrence_is_never_released(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "*/10 * * * *", created=t0 - timedelta(seconds=1))
    with Schedules(env.settings) as schedules:
        assert schedules.skip(sid, t0 + timedelta(minutes=10), now=t0)
        assert not schedules.skip(sid, t0 + timedelta(minutes=10), now=t0)  # already
        upcoming = schedules.next(sid, 3, after=t0)
    assert [u.skipped for u in upcoming] == [True, False, False]  # t0 itself is not "after t0"
    LaunchOccurrences(env.ledger, env.producer).run(t0 + timedelta(minutes=20, seconds=1))
    assert states(env, sid) == ["late", "skipped", "released"]  # t0 went out 20 min late
    assert broadcast_count(env, sid) == 2


def test_two_schedulers_at_once_release_each_occurrence_once(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "* * * * *", created=t0 - timedelta(seconds=1))
    now = t0 + timedelta(minutes=19, seconds=1)
    producers = [Producer(env.settings) for _ in range(2)]
    jobs = [LaunchOccurrences(env.ledger, p) for p in producers]
    threads = [threading.Thread(target=job.run, args=(now,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for producer in producers:
        producer.close()
    assert len(states(env, sid)) == 20 and broadcast_count(env, sid) == 20
    with env.ledger.engine.connect() as conn:
        deliveries = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id "
            f"WHERE b.source = 'schedule:{sid}'"
        ).scalar_one()
    assert deliveries == 20 * len(TARGETS)


def check_a_release_cut_short_by_a_crash_is_finished_by_the_next_leader(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "*/10 * * * *", created=t0 - timedelta(seconds=1))
    bid = occurrence_broadcast_id(sid, t0)
    # The dead leader recorded the occurrence, then died before creating its broadcast.
    env.ledger.schedules.record(sid, t0, OccurrenceState.ON_TIME, t0, broadcast_id=bid)
    LaunchOccurrences(env.ledger, env.producer).run(t0 + timedelta(seconds=3))
    assert env.ledger.broadcasts.counts(bid)["queued"] == 3
    assert env.ledger.schedules.unfinished() == []
    assert states(env, sid) == ["released"] and broadcast_count(env, sid) == 1


def check_a_release_cut_short_long_ago_is_recorded_missed_not_sent(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "*/10 * * * *", created=t0 - timedelta(seconds=1), grace=60)
    bid = occurrence_broadcast_id(sid, t0)
    env.ledger.schedules.record(sid, t0, OccurrenceState.ON_TIME, t0, broadcast_id=bid)
    LaunchOccurrences(env.ledger, env.producer).finish_unfinished(t0 + timedelta(hours=1))
    [occurrence] = env.ledger.schedules.occurrences(sid)
    assert occurrence.state is OccurrenceState.MISSED and "died" in (occurrence.note or "")
    assert env.ledger.schedules.unfinished() == [] and broadcast_count(env, sid) == 0


def check_an_occurrence_that_cannot_be_sent_is_recorded_failed(env: Env) -> None:
    t0 = ten_minutes_ago_floor()
    sid = add_schedule(env, "*/10 * * * *", created=t0 - timedelta(seconds=1))
    env.ledger.token_caches.delete(T)  # the tenant's sign-in was removed meanwhile
    LaunchOccurrences(env.ledger, env.producer).run(t0 + timedelta(seconds=1))
    [occurrence] = env.ledger.schedules.occurrences(sid)
    assert occurrence.state is OccurrenceState.FAILED and T in (occurrence.note or "")
    assert env.ledger.schedules.unfinished() == [] and broadcast_count(env, sid) == 0


@pytest.mark.parametrize(
    "check",
    [
        check_a_release_cut_short_by_a_crash_is_finished_by_the_next_leader,
        check_a_release_cut_short_long_ago_is_recorded_missed_not_sent,
        check_an_occurrence_that_cannot_be_sent_is_recorded_failed,
    ],
    ids=check_id,
)
def test_half_done_or_unsendable_occurrences(env: Env, check: Callable[[Env], None]) -> None:
    check(env)
