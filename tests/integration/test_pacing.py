"""Permits for edits, recalls and audience reads (pace.lua) against a real Redis.

Limits are checked on the times the script itself recorded (Redis's clock), so a slow
machine can cost throughput but never fail a limit.
"""

from __future__ import annotations

import itertools
import time
import uuid

import redis

from threadcast.dispatch import keys
from threadcast.dispatch.changes import TENANT_WIDE, ChangeGate, EditLimits
from threadcast.dispatch.limits import Limits
from threadcast.dispatch.pacing import Pacer, Scope

WINDOW = 0.25


def limits(team: int = 100, channel: int = 100) -> Limits:
    return Limits(
        WINDOW, app=1000, tenant=1000, team=team, channel=channel, channel_daily=1000, overrides={}
    )


def scope(name: str, limit: int, *, even: bool = False) -> Scope:
    return Scope(
        name, keys.PREFIX + f"test:log:{name}", keys.PREFIX + f"test:cool:{name}", limit, even
    )


def take_for(pacer: Pacer, scopes: list[Scope], seconds: float) -> int:
    """Permits taken by asking as fast as possible for ``seconds``."""
    taken = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pacer.take(scopes, uuid.uuid4().hex):
            taken += 1
    return taken


def in_any_window(client: redis.Redis, log: str) -> int:
    """The most permits the log holds within any one window (on Redis's clock)."""
    times = [score for _, score in client.zrange(log, 0, -1, withscores=True)]
    return max(sum(1 for t in times if start <= t < start + WINDOW) for start in times)


def test_no_window_holds_more_than_the_limit_and_none_is_taken_unless_all_have_room(
    clean_redis: redis.Redis,
) -> None:
    pacer = Pacer(clean_redis, lambda: WINDOW)
    wide, narrow = scope("wide", 50), scope("narrow", 5)
    taken = take_for(pacer, [wide, narrow], 1.0)
    assert 5 <= taken <= 5 * (1.0 / WINDOW + 1)
    assert in_any_window(clean_redis, narrow.log) <= 5
    # The wide scope was written only with the narrow one, never alone (each log keeps its
    # last window only).
    assert clean_redis.zrange(wide.log, 0, -1) == clean_redis.zrange(narrow.log, 0, -1)


def test_a_full_scope_says_which_and_for_how_long(clean_redis: redis.Redis) -> None:
    pacer = Pacer(clean_redis, lambda: WINDOW)
    scopes = [scope("a", 10), scope("b", 1)]
    assert pacer.take(scopes, "p1")
    refused = pacer.take(scopes, "p2")
    assert not refused and refused.full == 1 and refused.name == "b"
    assert 0 < refused.wait <= WINDOW
    clean_redis.set(scopes[0].cool, f"{time.time() + 5:.6f}")  # a Retry-After on "a"
    time.sleep(WINDOW)
    cooling = pacer.take(scopes, "p3")
    assert not cooling and cooling.full == 0 and cooling.wait > 4


def test_even_permits_are_spread_a_window_over_the_limit_apart(clean_redis: redis.Redis) -> None:
    pacer = Pacer(clean_redis, lambda: WINDOW)
    even = scope("even", 10, even=True)
    assert pacer.take([even], "first")
    refused = pacer.take([even], "second")
    assert not refused and 0 < refused.wait <= WINDOW / 10 + 0.002
    take_for(pacer, [even], 0.5)
    times = sorted(score for _, score in clean_redis.zrange(even.log, 0, -1, withscores=True))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= WINDOW / 10 - 1e-6  # never two closer than window / limit


def test_edits_share_the_posts_team_and_channel_logs(clean_redis: redis.Redis) -> None:
    tenant, team, channel = str(uuid.uuid4()), str(uuid.uuid4()), "19:c@thread.tacv2"
    gate = ChangeGate(clean_redis, limits(team=4, channel=1), EditLimits(app=300, tenant=30))
    assert gate.permit(tenant, team, channel, "e1")
    time.sleep(WINDOW / 30)  # past the edits' own even spacing (app and tenant)
    # The channel's second request in a window waits, and it is the channel that is full.
    second = gate.permit(tenant, team, channel, "e2")
    assert not second and second.full == 3 and second.full not in TENANT_WIDE
    # Its permit is in the very logs a post's permit goes to (release.lua sees it).
    assert clean_redis.zscore(keys.channel_log(tenant, team, channel), "e1") is not None
    assert clean_redis.zscore(keys.team_log(tenant, team), "e1") is not None
    assert clean_redis.zscore(keys.edit_tenant_log(tenant), "e1") is not None
