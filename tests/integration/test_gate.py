"""The dispatch gate against a real Redis, with a hand-driven clock: limits, fairness, holds."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate, Limits, keys

MakeGate = Callable[..., tuple[Gate, "Clock"]]
START = 1_800_000_000.0  # a fixed instant, well away from a UTC midnight


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def guid() -> str:
    return str(uuid.uuid4())


def messages(tenant: str, teams: list[str], n: int) -> list[DeliveryMessage]:
    return [
        DeliveryMessage(guid(), "b", tenant, teams[i % len(teams)], f"19:c{i}x@thread.tacv2")
        for i in range(n)
    ]


@pytest.fixture
def make_gate(clean_redis: redis.Redis) -> MakeGate:
    def make(**limits: object) -> tuple[Gate, Clock]:
        base = {"window": 1.0, "app": 100, "tenant": 20, "team": 4, "channel_daily": 3000,
                "overrides": {}}  # fmt: skip
        clock = Clock()
        gate = Gate(clean_redis, Limits(**(base | limits)), clock=clock)  # type: ignore[arg-type]
        gate.publish_limits()
        return gate, clock

    return make


def drain(
    gate: Gate, clock: Clock, seconds: float, step: float = 0.05
) -> list[tuple[float, str, str]]:
    """Release everything allowed while the clock advances: (time, tenant, team) per permit."""
    out: list[tuple[float, str, str]] = []
    end = clock.now + seconds
    while clock.now < end:
        gate.promote()
        for m in gate.release(1000).messages:
            out.append((clock.now, m.tenant, m.group))
        clock.now = round(clock.now + step, 6)
    return out


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_each_scope_holds_to_its_limit_in_every_sliding_window(make_gate: MakeGate) -> None:
    gate, clock = make_gate(app=50, tenant=20, team=4)
    tenants = [guid() for _ in range(4)]
    teams = {t: [guid() for _ in range(8)] for t in tenants}
    for t in tenants:
        gate.enqueue(messages(t, teams[t], 200))
    released = drain(gate, clock, 10)
    times = [at for at, *_ in released]
    assert max_in_window(times) <= 50
    for t in tenants:
        assert max_in_window([at for at, who, _ in released if who == t]) <= 20
    # The binding limit (the app's 50/window) is used to the full once the first window opens.
    assert len(released) >= 50 * 9


def test_team_limit_binds_a_tenant_with_one_team(make_gate: MakeGate) -> None:
    gate, clock = make_gate(team=4)
    gate.enqueue(messages(guid(), [guid()], 40))
    released = drain(gate, clock, 5)
    assert max_in_window([at for at, *_ in released]) == 4
    assert 16 <= len(released) <= 20


def test_busy_tenants_share_the_app_limit_evenly(make_gate: MakeGate) -> None:
    gate, clock = make_gate(app=30, tenant=50, team=50)
    tenants = [guid() for _ in range(3)]
    for t in tenants:
        gate.enqueue(messages(t, [guid() for _ in range(20)], 500))
    released = drain(gate, clock, 5)
    shares = Counter(who for _, who, _ in released)
    assert max(shares.values()) - min(shares.values()) <= 3


def test_a_small_tenant_is_not_stuck_behind_a_huge_one(make_gate: MakeGate) -> None:
    gate, clock = make_gate(app=100, tenant=20, team=4)
    big, small = guid(), guid()
    gate.enqueue(messages(big, [guid() for _ in range(50)], 20_000))
    drain(gate, clock, 2)
    gate.enqueue(messages(small, [guid() for _ in range(10)], 10))
    released = drain(gate, clock, 0.6)
    assert sum(1 for _, who, _ in released if who == small) == 10


def test_cooldown_stops_the_scope_until_it_ends(make_gate: MakeGate) -> None:
    gate, clock = make_gate(app=100, tenant=20, team=4)
    tenant, team_a, team_b = guid(), guid(), guid()
    gate.enqueue(messages(tenant, [team_a], 20) + messages(tenant, [team_b], 20))
    first = gate.release(100).messages
    assert {m.group for m in first} == {team_a, team_b}
    clock.now += 0.5
    # Graph throttled a post to team A: the fullest scope in the last window is that team.
    hit = next(m for m in first if m.group == team_a)
    assert gate.cool_down(hit, 5.0, tenant_wide=False) == keys.team_scope(tenant, team_a)
    during = drain(gate, clock, 4.9)
    assert during and {team for *_, team in during} == {team_b}
    clock.now += 0.2
    assert team_a in {m.group for m in gate.release(100).messages}


def test_a_503_with_retry_after_cools_the_whole_tenant(make_gate: MakeGate) -> None:
    gate, clock = make_gate()
    tenant, other = guid(), guid()
    gate.enqueue(messages(tenant, [guid(), guid()], 10) + messages(other, [guid()], 4))
    first = gate.release(100).messages
    hit = next(m for m in first if m.tenant == tenant)
    scope = gate.cool_down(hit, 3.0, tenant_wide=True)
    assert scope == keys.tenant_scope(tenant)
    clock.now += 1.0
    later = gate.release(100).messages
    assert all(m.tenant != tenant for m in later)


def test_channel_daily_quota_holds_until_midnight(make_gate: MakeGate) -> None:
    gate, clock = make_gate(channel_daily=2)
    tenant, team = guid(), guid()
    channel = "19:one@thread.tacv2"
    gate.enqueue([DeliveryMessage(guid(), "b", tenant, team, channel) for _ in range(3)])
    release = gate.release(100)
    assert len(release.messages) == 2 and len(release.held) == 1
    clock.now += 3.0
    assert gate.promote() == 0 and not gate.release(100).messages
    clock.now = (clock.now // 86_400 + 1) * 86_400 + 1  # the next UTC day
    assert gate.promote() == 1
    assert len(gate.release(100).messages) == 1


def test_a_tenant_with_zero_quota_holds_and_never_spins(make_gate: MakeGate) -> None:
    frozen = guid()
    gate, clock = make_gate(overrides={frozen: (0, 4, 3000)})
    gate.enqueue(messages(frozen, [guid()], 5))
    release = gate.release(100)
    assert release.messages == [] and release.next_wake is not None
    assert release.next_wake > clock.now + 86_400  # it sleeps, it does not poll


def test_a_stale_permit_takes_a_fresh_slot_only_if_there_is_room(make_gate: MakeGate) -> None:
    gate, clock = make_gate(team=2)
    tenant, team = guid(), guid()
    gate.enqueue(messages(tenant, [team], 4))
    fresh, stale = gate.release(100).messages
    assert gate.start(fresh) is True
    clock.now += 0.9  # the second permit waited too long in the queue
    assert gate.start(stale) is True  # its slot was given back and taken again now
    # The team's window is now full (two sends in the last second): no fresh slot for a
    # message that comes without a permit (or with an expired one).
    late = DeliveryMessage(guid(), "b", tenant, team, "19:late@thread.tacv2")
    assert gate.start(late) is False
    clock.now += 1.1
    assert gate.start(late) is True


def test_parked_retries_come_back_first_when_due(make_gate: MakeGate) -> None:
    gate, clock = make_gate()
    tenant, team = guid(), guid()
    waiting = messages(tenant, [team], 3)
    gate.enqueue(waiting)
    retry = DeliveryMessage(guid(), "b", tenant, team, "19:retry@thread.tacv2")
    gate.park(retry, 2.0)
    assert gate.whereabouts([retry.delivery_id]) == ["p"]
    clock.now += 5
    assert gate.promote() == 1
    assert gate.release(1).messages[0].delivery_id == retry.delivery_id
