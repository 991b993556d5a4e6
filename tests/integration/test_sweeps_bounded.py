"""Bounded background work (issue #14, item 7): the orphan sweep looks at a bounded page per
run, goes on from a saved cursor, and renews the scheduler's lease between chunks. On each
ledger backend, against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from producer import Producer
from tests.integration.gates import Gate
from tests.integration.test_enqueue_stream import rows, signed_in
from threadcast.constants import SCHEDULER_LEASE_KEY
from threadcast.dispatch import keys
from threadcast.lease import LeaderLease
from threadcast.lifecycle.sweeps import OrphanSweep
from threadcast.settings import load_settings

WAITING = 5_000


@pytest.fixture
def producer(database_url: str, redis_url: str, clean_redis: redis.Redis) -> Iterator[Producer]:
    with Producer(load_settings(redis_url=redis_url, database_url=database_url)) as made:
        yield made


def lost_broadcast(producer: Producer, clean_redis: redis.Redis) -> None:
    """``WAITING`` queued deliveries in the ledger that Redis has forgotten."""
    tenants = signed_in(producer.ledger, 2)
    lines = rows(tenants, WAITING)
    targets = [dict(zip(("tenant", "group", "channel"), x.split(","), strict=True)) for x in lines]
    producer.send("<p>swept</p>", targets, broadcast_id="sweep-1")
    clean_redis.flushdb()


def test_each_run_handles_one_page_and_the_next_goes_on_from_the_cursor(
    producer: Producer, clean_redis: redis.Redis
) -> None:
    lost_broadcast(producer, clean_redis)
    renewals: list[int] = []

    def keep_lease() -> bool:
        renewals.append(1)
        return True

    sweep = OrphanSweep(
        producer.ledger, Gate(clean_redis), grace=0, page=2_000, chunk=500, keep_lease=keep_lease
    )
    later = datetime.now(UTC) + timedelta(seconds=1)
    per_run = []
    for _ in range(3):
        before = sweep.requeued
        sweep.run(later)
        per_run.append(sweep.requeued - before)
    assert per_run == [2_000, 2_000, 1_000]
    assert sweep.passes == 1 and sweep.cursor == ""  # the third run ended the pass
    assert clean_redis.hlen(keys.KNOWN) == WAITING
    assert len(renewals) == 4 + 4 + 3  # before every chunk
    for _ in range(3):
        sweep.run(later)  # a new pass: everything is where it should be now
    assert sweep.requeued == WAITING and sweep.passes == 2


def test_a_run_stops_when_the_lease_is_lost_and_renews_it_while_held(
    producer: Producer, clean_redis: redis.Redis
) -> None:
    lost_broadcast(producer, clean_redis)
    lease = LeaderLease(clean_redis, SCHEDULER_LEASE_KEY, ttl=4.0)
    assert lease.keep()
    renewed: list[int] = []
    real_hold = lease.keep

    def hold() -> bool:
        # Every chunk is slow: the lease would expire during the run without renewals.
        clean_redis.pexpire(SCHEDULER_LEASE_KEY, 1_500)
        lease._renewed_at -= lease.ttl  # due for renewal: hold() renews now
        held = real_hold()
        renewed.append(int(clean_redis.pttl(SCHEDULER_LEASE_KEY)))
        return held

    sweep = OrphanSweep(
        producer.ledger, Gate(clean_redis), grace=0, page=10_000, chunk=1_000, keep_lease=hold
    )
    sweep.run(datetime.now(UTC) + timedelta(seconds=1))
    assert sweep.requeued == WAITING
    assert renewed and all(ttl > 3_000 for ttl in renewed)  # each call put it back to 4 s

    clean_redis.flushdb()
    calls = iter([True, False])
    stopped = OrphanSweep(
        producer.ledger,
        Gate(clean_redis),
        grace=0,
        page=10_000,
        chunk=1_000,
        keep_lease=lambda: next(calls),
    )
    stopped.run(datetime.now(UTC) + timedelta(seconds=1))
    assert stopped.requeued == 1_000  # one chunk, then the lease was gone
    assert stopped.cursor != ""  # the next leader's run goes on from here


def test_deliveries_said_to_wait_where_nothing_can_wait_are_requeued(
    producer: Producer, clean_redis: redis.Redis
) -> None:
    tenants = signed_in(producer.ledger, 2)
    lines = rows(tenants, 200)
    targets = [dict(zip(("tenant", "group", "channel"), x.split(","), strict=True)) for x in lines]
    producer.send("<p>stuck</p>", targets, broadcast_id="stuck-1")
    # Redis lost one tenant's team index and queues but kept what it knew of the deliveries.
    lost_tenant = tenants[0]
    gone = [k for k in clean_redis.keys(f"{keys.PREFIX}q:{lost_tenant}:*")]
    clean_redis.delete(*gone, keys.teams(lost_tenant))
    waiting = producer.ledger.deliveries.stale_waiting(datetime.now(UTC) + timedelta(1))
    theirs = [m.delivery_id for m in waiting if m.tenant == lost_tenant]
    assert len(theirs) == 100 and set(Gate(clean_redis).whereabouts(theirs)) == {"p"}
    sweep = OrphanSweep(producer.ledger, Gate(clean_redis), grace=0)
    sweep.run(datetime.now(UTC) + timedelta(seconds=1))
    assert sweep.requeued == 100  # that tenant's; the other tenant's still wait as they were
    assert clean_redis.exists(keys.teams(lost_tenant))
    sweep.run(datetime.now(UTC) + timedelta(seconds=1))
    assert sweep.requeued == 100  # nothing stuck any more
