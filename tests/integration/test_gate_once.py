"""Issue 14, round two, against a real Redis: one entry per delivery, the daily quota counted
at the real send, cancelled broadcasts leaving the gate, keys that do not grow for ever, and
``Gate.stuck`` for the orphan sweep."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis

from tests.integration.gates import WINDOW, MakeGate, gate_maker, guid, to
from threadcast.dispatch import Start, keys


@pytest.fixture
def make_gate(clean_redis: redis.Redis) -> MakeGate:
    return gate_maker(clean_redis)


def waiting_entries(client: redis.Redis) -> int:
    queued = sum(int(client.llen(k)) for k in client.scan_iter(keys.PREFIX + "q:*"))
    return queued + int(client.zcard(keys.DELAYED))


def today(client: redis.Redis) -> dict[str, int]:
    seconds, _ = client.time()
    found = client.hgetall(keys.channel_day(datetime.fromtimestamp(seconds, UTC)))
    return {k.decode(): int(v) for k, v in found.items()}


# -- one entry per delivery -------------------------------------------------------------------


def test_a_delivery_enqueued_again_is_not_put_in_twice(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    """Issue 14: an idempotent re-send re-published every queued delivery; each copy was
    released, took a permit and counted against the channel's day (6 POSTs of one broadcast
    gave 17 permits for 5 deliveries). Before the fix: 30 entries, 5 released at once."""
    gate = make_gate(team=100, channel=10)
    tenant, team = guid(), guid()
    five = [to(tenant, team, f"19:c{i}@thread.tacv2") for i in range(5)]
    assert gate.enqueue(five) == 5
    for _ in range(5):
        assert gate.enqueue(five) == 0
    assert waiting_entries(clean_redis) == 5
    released = gate.release(100).messages
    assert sorted(m.delivery_id for m in released) == sorted(m.delivery_id for m in five)
    # Released ones are held too: a re-send while they travel adds nothing.
    assert gate.enqueue(five) == 0 and waiting_entries(clean_redis) == 0
    for m in released:
        assert gate.start(m) is Start.GO
    assert sum(today(clean_redis).values()) == 5  # five sends, counted when started


def test_replace_puts_a_delivery_in_whatever_the_gate_says(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    gate = make_gate(team=100, channel=10)
    tenant, team = guid(), guid()
    lost = to(tenant, team, "19:one@thread.tacv2")
    gate.enqueue([lost])
    (released,) = gate.release(100).messages  # released, never taken (a killed worker)
    assert today(clean_redis) == {f"r|{tenant}:{team}:19:one@thread.tacv2": 1}
    assert gate.enqueue([lost]) == 0
    assert gate.enqueue([lost], replace=True) == 1  # the sweep re-queues it
    assert gate.whereabouts([lost.delivery_id]) == ["p"]
    assert today(clean_redis) == {}  # the replaced permit's reservation went back
    (again,) = gate.release(100).messages
    assert again.delivery_id == lost.delivery_id and again.permit != released.permit


# -- the daily quota, counted at the send ----------------------------------------------------


def test_a_permit_given_back_costs_no_quota(make_gate: MakeGate, clean_redis: redis.Redis) -> None:
    gate = make_gate(channel_daily=1, channel=10, window=WINDOW)
    tenant, team, channel = guid(), guid(), "19:q@thread.tacv2"
    first, second = to(tenant, team, channel), to(tenant, team, channel)
    gate.enqueue([first, second])
    release = gate.release(100)
    # One permit outstanding fills the quota of 1: the other waits a window, not till midnight.
    assert [m.delivery_id for m in release.messages] == [first.delivery_id]
    assert not release.held
    # The first turns out not claimable (sent already): dropped, its permit given back.
    assert gate.drop(release.messages[0]) is True
    assert clean_redis.zcard(keys.APP_LOG) == 0
    assert gate.whereabouts([first.delivery_id]) == [None]
    assert today(clean_redis) == {}
    time.sleep(1.1 * WINDOW)
    gate.promote()
    (later,) = gate.release(100).messages
    assert later.delivery_id == second.delivery_id
    assert gate.start(later) is Start.GO
    assert today(clean_redis) == {f"{tenant}:{team}:{channel}": 1}
    # A redelivered message of the sent one gives nothing back: its permit was a real POST.
    assert gate.drop(later) is False and clean_redis.zcard(keys.APP_LOG) == 1


def test_a_park_gives_back_only_a_permit_never_started(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    gate = make_gate(team=100, channel=10)
    tenant, team = guid(), guid()
    unused, posted = to(tenant, team, "19:u@thread.tacv2"), to(tenant, team, "19:p@thread.tacv2")
    gate.enqueue([unused, posted])
    first, second = gate.release(100).messages
    assert clean_redis.zcard(keys.APP_LOG) == 2
    # Parked with its permit unused (a token trouble, a failed publish): the slot goes back.
    assert gate.park(first, 0.0) is True
    assert clean_redis.zcard(keys.APP_LOG) == 1
    # Parked for a retry after its POST: the permit stands for a real request and stays.
    assert gate.start(second) is Start.GO
    assert gate.park(second, 5.0) is True
    assert clean_redis.zcard(keys.APP_LOG) == 1
    assert today(clean_redis) == {f"{tenant}:{team}:19:p@thread.tacv2": 1}


# -- cancel -----------------------------------------------------------------------------------


def test_a_cancelled_broadcast_leaves_the_gate_without_permits(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    gate = make_gate(team=100, channel=10, tenant=100)
    tenant, team = guid(), guid()
    doomed = [to(tenant, team, f"19:d{i}@thread.tacv2", "doomed") for i in range(6)]
    kept = [to(tenant, team, f"19:k{i}@thread.tacv2", "kept") for i in range(2)]
    gate.enqueue(doomed[:3] + kept[:1] + doomed[3:5] + kept[1:])
    gate.park(doomed[5], 10.0)  # a retry waiting in the delayed set
    (early,) = gate.release(1).messages  # released (claimed) before the cancel
    assert early.broadcast_id == "doomed"
    gate.cancel("doomed")
    released = gate.release(100).messages
    assert [m.broadcast_id for m in released] == ["kept", "kept"]
    assert clean_redis.zcard(keys.APP_LOG) == 3  # the early one and the two kept
    # Its waiting entries are gone from the queues and from `known`; only the delayed one
    # (due in 10 s) and the released one are still known.
    assert waiting_entries(clean_redis) == 1
    assert early.delivery_id == doomed[0].delivery_id
    where = gate.whereabouts([m.delivery_id for m in doomed])
    assert where[1:] == [None, None, None, None, "p"] and str(where[0]).startswith("r")
    # The window between its claim and its POST is closed: no permit, the slot given back.
    assert gate.start(early) is Start.CANCELLED
    assert clean_redis.zcard(keys.APP_LOG) == 2
    assert gate.whereabouts([early.delivery_id]) == [None]
    assert sum(v for k, v in today(clean_redis).items() if not k.startswith("r|")) == 0
    # A retry of it parked after the cancel is not parked; the delayed one is dropped when due.
    assert gate.park(doomed[0], 0.0) is False
    clean_redis.zadd(keys.DELAYED, {m: 0 for m in clean_redis.zrange(keys.DELAYED, 0, -1)})
    assert gate.promote() == 0 and clean_redis.zcard(keys.DELAYED) == 0
    assert gate.whereabouts([m.delivery_id for m in doomed]) == [None] * 6
    # The mark lapses on its own: a TTL of a few days.
    assert 2 * 86_400 < clean_redis.ttl(keys.CANCELLED) <= 3 * 86_400
    # An operator retry lifts it: its deliveries go again.
    gate.uncancel("doomed")
    assert gate.enqueue(doomed[:2]) == 2
    assert [m.broadcast_id for m in gate.release(100).messages] == ["doomed", "doomed"]


def test_a_million_cancelled_entries_leave_in_bounded_slices(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    gate = make_gate(team=100, channel=10, tenant=100)
    tenant, team = guid(), guid()
    gate.enqueue([to(tenant, team, f"19:c{i}@thread.tacv2", "big") for i in range(5000)])
    gate.enqueue([to(tenant, team, "19:last@thread.tacv2", "other")])
    gate.cancel("big")
    first = gate.release(100)
    # One call drops a bounded slice (2,000) of the cancelled entries, not all 5,000.
    assert clean_redis.llen(keys.queue(tenant, team)) == 5001 - 2000
    assert first.messages == [] and first.next_wake is not None  # come back at once
    calls = 1
    while not (release := gate.release(100)).messages:
        calls += 1
    assert [m.broadcast_id for m in release.messages] == ["other"] and calls == 2  # 2000 a call
    assert clean_redis.hlen(keys.KNOWN) == 1  # the released one


# -- bounded keys -----------------------------------------------------------------------------


def test_every_log_and_cooldown_key_expires(make_gate: MakeGate, clean_redis: redis.Redis) -> None:
    gate = make_gate(team=100, channel=10)
    tenant, team = guid(), guid()
    fresh, stale = to(tenant, team, "19:a@thread.tacv2"), to(tenant, team, "19:b@thread.tacv2")
    gate.enqueue([fresh])
    (released,) = gate.release(100).messages
    for key in clean_redis.scan_iter(keys.PREFIX + "log:*"):
        clean_redis.persist(key)
    assert gate.start(released) is Start.GO  # the fresh path (ZADD XX)
    assert gate.start(stale) is Start.GO  # no permit: the fresh-slot path
    for key in clean_redis.scan_iter(keys.PREFIX + "*"):
        if key != keys.APP_LOG.encode() and (
            key.startswith((keys.PREFIX + "log:").encode()) or b":day:" in key
        ):
            assert clean_redis.ttl(key) > 0, key
    scope = gate.cool_down(released, 0.3, tenant_wide=True)
    assert scope == keys.tenant_scope(tenant)
    assert 0 < clean_redis.pttl(keys.cooldown(scope)) <= 301  # whole milliseconds, rounded up
    assert not gate.release(100).messages
    time.sleep(0.35)
    assert clean_redis.exists(keys.cooldown(scope)) == 0
    assert not list(clean_redis.scan_iter(keys.PREFIX + "cool*"))


# -- Gate.stuck ------------------------------------------------------------------------------


def test_stuck_names_what_the_gate_says_waits_but_cannot(
    make_gate: MakeGate, clean_redis: redis.Redis
) -> None:
    gate = make_gate(team=100, channel=10)
    tenant, lost_team, fine_team = guid(), guid(), guid()
    lost = [to(tenant, lost_team, f"19:l{i}@thread.tacv2") for i in range(3)]
    fine = [to(tenant, fine_team, f"19:f{i}@thread.tacv2") for i in range(3)]
    delayed = to(tenant, fine_team, "19:later@thread.tacv2")
    gate.enqueue(lost + fine)
    gate.park(delayed, 60.0)
    unknown = to(tenant, fine_team, "19:never@thread.tacv2")
    everything = lost + fine + [delayed, unknown]
    assert gate.stuck(everything) == []
    clean_redis.delete(keys.queue(tenant, lost_team))  # Redis lost one team's queue
    assert gate.stuck(everything) == [m.delivery_id for m in lost]
    clean_redis.zrem(keys.DELAYED, *clean_redis.zrange(keys.DELAYED, 0, -1))
    assert gate.stuck(everything) == [m.delivery_id for m in lost] + [delayed.delivery_id]
    clean_redis.delete(keys.TENANTS)  # the tenant gone: its other team cannot be served
    assert set(gate.stuck(everything)) == {m.delivery_id for m in lost + fine + [delayed]}
    # What the sweep does with them: replace, and they are waiting for real again.
    gate.enqueue(lost + fine + [delayed], replace=True)
    assert gate.stuck(everything) == []
    assert gate.stuck([]) == []
