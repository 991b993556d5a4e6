"""The throttle policy: 429 + Retry-After exactly when a scope is full, and what it measures."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from simulator.errors import GraphError
from simulator.knobs import ThrottleLimits
from simulator.posts import PostAttempt
from simulator.throttle import Throttle
from simulator.windows import DAY_SECONDS

T0 = 1_800_000_000.0
ATTEMPT = PostAttempt(
    tenant_id="tenant-1",
    client_id="app-1",
    group_id="team-1",
    channel_id="19:a@thread.tacv2",
    content_type=1,
    content="hi",
    raw_body=b"{}",
    request_id="r",
    client_request_id=None,
    retry_attempt=None,
    received_at=T0,
)


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def _send(throttle: Throttle, at: float, **where: str) -> int | str:
    """What the client would get: 204, or '429 after N'."""
    attempt = replace(ATTEMPT, received_at=at, **where)
    throttle.observe(attempt)
    try:
        throttle.admit(attempt)
    except GraphError as exc:
        assert (exc.status, exc.code) == (429, "TooManyRequests")
        return f"429 after {exc.headers['Retry-After']}"
    return 204


def test_off_by_default_and_then_nothing_is_measured() -> None:
    throttle = Throttle(ThrottleLimits(), FakeClock())
    assert [_send(throttle, T0) for _ in range(100)] == [204] * 100
    assert throttle.report()["scopes"] == {}


def test_a_team_over_its_limit_is_throttled_and_other_teams_are_not() -> None:
    throttle = Throttle(ThrottleLimits(team_rps=2), FakeClock())
    assert [_send(throttle, T0 + n * 0.1) for n in range(3)] == [204, 204, "429 after 1"]
    assert _send(throttle, T0 + 0.3, group_id="team-2") == 204
    assert _send(throttle, T0 + 1.05) == 204  # the first one left the window at T0 + 1
    assert _send(throttle, T0 + 1.06) == "429 after 1"


def test_a_throttled_request_is_not_counted() -> None:
    throttle = Throttle(ThrottleLimits(team_rps=1), FakeClock())
    assert _send(throttle, T0) == 204
    for n in range(1, 10):
        assert _send(throttle, T0 + n * 0.1) == "429 after 1"
    assert _send(throttle, T0 + 1.0) == 204
    assert throttle.report()["scopes"]["team:team-1"]["max_window"] == 1


def test_every_scope_kind_is_enforced() -> None:
    limits = ThrottleLimits(app_rps=3, tenant_rps=2, team_rps=1)
    throttle = Throttle(limits, FakeClock())
    assert _send(throttle, T0, group_id="a") == 204
    assert _send(throttle, T0, group_id="b") == 204
    assert _send(throttle, T0, group_id="c") == "429 after 1"  # the tenant's 2
    assert _send(throttle, T0, group_id="d", tenant_id="tenant-2") == 204
    assert _send(throttle, T0, group_id="e", tenant_id="tenant-3") == "429 after 1"  # the app's 3


def test_the_message_names_the_full_scope() -> None:
    throttle = Throttle(ThrottleLimits(team_rps=1), FakeClock())
    throttle.admit(ATTEMPT)
    with pytest.raises(GraphError) as caught:
        throttle.admit(ATTEMPT)
    assert "limit of 1 requests per second on team team-1" in caught.value.message


def test_a_channel_over_its_rate_is_throttled_per_tenant_team_and_channel() -> None:
    throttle = Throttle(ThrottleLimits(channel_rps=1), FakeClock())
    assert [_send(throttle, T0 + n * 0.3) for n in range(3)] == [204, "429 after 1", "429 after 1"]
    # Every other channel, the same channel id in another team, another tenant's: their own.
    assert _send(throttle, T0 + 0.7, channel_id="19:b@thread.tacv2") == 204
    assert _send(throttle, T0 + 0.7, group_id="team-2") == 204
    assert _send(throttle, T0 + 0.7, tenant_id="tenant-2") == 204
    assert _send(throttle, T0 + 1.7) == 204  # after the last Retry-After (T0 + 0.6 + 1)
    scopes = throttle.report()["scopes"]
    assert scopes["channel_rps:tenant-1/team-1/19:a@thread.tacv2"] == {
        "limit": 1,
        "max_window": 1,
        "throttled": 2,
        "retry_after_violations": 1,  # the third came while the first 429's Retry-After ran
    }
    assert scopes["channel_rps:tenant-2/team-1/19:a@thread.tacv2"]["max_window"] == 1
    assert len(scopes) == 4


def test_the_channel_rate_message_names_the_channel() -> None:
    throttle = Throttle(ThrottleLimits(channel_rps=1, team_rps=4), FakeClock())
    throttle.admit(ATTEMPT)
    with pytest.raises(GraphError) as caught:
        throttle.admit(ATTEMPT)
    assert (
        "limit of 1 requests per second in channel tenant-1/team-1/19:a@thread.tacv2"
        in caught.value.message
    )
    assert caught.value.headers == {"Retry-After": "1"}


def test_the_daily_limit_retries_after_utc_midnight() -> None:
    clock = FakeClock()
    throttle = Throttle(ThrottleLimits(channel_daily=2), clock)
    midnight = (T0 // DAY_SECONDS + 1) * DAY_SECONDS
    evening = midnight - 100.5
    assert [_send(throttle, evening) for _ in range(3)] == [204, 204, "429 after 101"]
    assert _send(throttle, evening, channel_id="19:b@thread.tacv2") == 204
    assert _send(throttle, midnight) == 204  # a new day, but 0.5 s early: a violation
    assert _send(throttle, midnight + 0.5) == 204
    clock.now = midnight + 1
    report = throttle.report()["scopes"]["channel:team-1/19:a@thread.tacv2"]
    assert report == {"limit": 2, "today": 2, "throttled": 1, "retry_after_violations": 1}


def test_retry_after_violations_are_counted_per_scope() -> None:
    throttle = Throttle(ThrottleLimits(tenant_rps=5, team_rps=1), FakeClock())
    assert _send(throttle, T0) == 204
    assert _send(throttle, T0 + 0.1) == "429 after 1"  # Retry-After runs until T0 + 1.1
    assert _send(throttle, T0 + 0.5) == "429 after 1"  # a violation; now runs until T0 + 1.5
    assert _send(throttle, T0 + 0.6, group_id="team-2") == 204  # not this team's Retry-After
    assert _send(throttle, T0 + 1.6) == 204  # waited it out
    report = throttle.report()
    assert report["scopes"]["team:team-1"] == {
        "limit": 1,
        "max_window": 1,
        "throttled": 2,
        "retry_after_violations": 1,
    }
    assert report["scopes"]["tenant:tenant-1"]["retry_after_violations"] == 0
    assert report["totals"] == {
        "throttled": 2,
        "retry_after_violations": 1,
        "max_window_over_limit": 0,
    }


def test_the_report_and_reset() -> None:
    throttle = Throttle(ThrottleLimits(app_rps=10, tenant_rps=10, team_rps=10), FakeClock())
    for n in range(4):
        _send(throttle, T0 + n * 0.3)  # all four fit in (T0 - 0.1, T0 + 0.9]
    report = throttle.report()
    assert report["limits"] == {
        "app_rps": 10,
        "tenant_rps": 10,
        "team_rps": 10,
        "channel_rps": 0,
        "channel_daily": 0,
    }
    assert set(report["scopes"]) == {"app:app-1", "tenant:tenant-1", "team:team-1"}
    assert {scope["max_window"] for scope in report["scopes"].values()} == {4}
    throttle.reset()
    assert throttle.report()["scopes"] == {}
    assert throttle.report()["totals"]["throttled"] == 0


def test_a_lowered_limit_is_judged_against_the_traffic_already_seen() -> None:
    throttle = Throttle(ThrottleLimits(team_rps=10), FakeClock())
    for n in range(5):
        _send(throttle, T0 + n * 0.01)
    throttle.configure(ThrottleLimits(team_rps=2))
    assert _send(throttle, T0 + 0.5) == "429 after 1"
    report = throttle.report()
    assert report["scopes"]["team:team-1"]["limit"] == 2
    assert report["totals"]["max_window_over_limit"] == 1


def test_a_clock_stepping_back_does_not_confuse_the_windows() -> None:
    throttle = Throttle(ThrottleLimits(team_rps=2), FakeClock())
    assert _send(throttle, T0) == 204
    assert _send(throttle, T0 - 5.0) == 204  # counted at T0
    assert _send(throttle, T0 - 5.0) == "429 after 1"
