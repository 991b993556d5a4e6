"""The scheduler's leader lease against a real Redis: one holder, compare-and-renew,
compare-and-delete, takeover after the holder stops renewing, and a holder that lost the
lease stopping at once."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from producer.devredis import free_port
from tests.integration.leases import current_holder
from tests.integration.stack import wait_for
from threadcast.lease import LeaderLease

KEY = "threadcast:test:leader"


class Ticks:
    """A hand-moved monotonic clock for the lease's local deadline."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_holder_at_a_time_and_a_clean_release_hands_over(clean_redis: redis.Redis) -> None:
    a, b = LeaderLease(clean_redis, KEY, 5.0, "a"), LeaderLease(clean_redis, KEY, 5.0, "b")
    assert a.keep() and a.valid()
    assert not b.keep() and not b.valid()
    assert current_holder(clean_redis, KEY) == "a"
    assert 0 < int(clean_redis.pttl(KEY)) <= 5000
    a.resign()
    assert current_holder(clean_redis, KEY) is None and not a.valid()
    assert b.keep() and current_holder(clean_redis, KEY) == "b"


def test_a_dead_holder_is_replaced_once_its_lease_expires(clean_redis: redis.Redis) -> None:
    dead, follower = LeaderLease(clean_redis, KEY, 1.0, "dead"), LeaderLease(clean_redis, KEY, 1.0)
    assert dead.keep()
    assert not follower.keep()  # the holder simply stops renewing (as if SIGKILLed)
    wait_for(follower.keep, timeout=5, what="the follower to take over")
    assert current_holder(clean_redis, KEY) == follower.holder


def test_a_holder_that_lost_the_lease_cannot_renew_or_delete_it(clean_redis: redis.Redis) -> None:
    ticks = Ticks()
    paused = LeaderLease(clean_redis, KEY, 5.0, "paused", monotonic=ticks)
    assert paused.keep()
    clean_redis.set(KEY, "successor", px=5000)  # it expired while we were paused; taken over
    ticks.t += 2.0  # past a quarter of the lease: the next hold() asks Redis
    assert not paused.keep() and not paused.valid()
    assert current_holder(clean_redis, KEY) == "successor"
    paused.resign()
    assert current_holder(clean_redis, KEY) == "successor"


def test_release_by_compare_and_delete_never_drops_anothers_lease(
    clean_redis: redis.Redis,
) -> None:
    holder = LeaderLease(clean_redis, KEY, 5.0, "holder")
    assert holder.keep()
    clean_redis.set(KEY, "another", px=5000)
    holder.resign()  # believes it holds it; the script compares first
    assert current_holder(clean_redis, KEY) == "another"


def test_the_local_deadline_stops_a_holder_that_cannot_renew(clean_redis: redis.Redis) -> None:
    ticks = Ticks()
    lease = LeaderLease(clean_redis, KEY, 5.0, "h", monotonic=ticks)
    assert lease.keep()
    ticks.t += 3.9
    assert lease.valid()
    ticks.t += 0.2  # 80 % of the lease since the last renewal: stop before Redis would expire it
    assert not lease.valid()


def test_unreachable_redis_means_not_leader() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    lease = LeaderLease(client, KEY, 2.0)
    assert not lease.keep() and not lease.valid()
    lease.resign()
    client.close()
