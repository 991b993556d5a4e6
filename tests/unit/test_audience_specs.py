"""Audience specs: the syntax, its errors (each naming the spec), and the send-time estimate."""

from __future__ import annotations

import math

import pytest

from producer.audiences import (
    Audience,
    Resolution,
    estimate,
    parse_spec,
    parse_specs,
    saved_definition,
)
from threadcast.contract import Target
from threadcast.errors import AudienceError, ValidationError
from threadcast.settings import Settings, TenantLimits

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
G2 = "12bd9fd6-8f93-4758-87c3-1fb73740a315"


def test_the_three_kinds_and_their_canonical_form() -> None:
    named = parse_spec("a", f" tenant = {T.upper()} ; channel = General ")
    assert named == Audience(tenant=T, channel="General")
    assert named.spec == f"tenant={T};channel=General"
    assert "every team" in named.describe()
    team = parse_spec("a", f"team={G};tenant={T}")
    assert team == Audience(tenant=T, team=G) and team.spec == f"tenant={T};team={G}"
    both = parse_spec("a", f"tenant={T};team={G};channel=Help Desk;")
    assert both.channel == "Help Desk" and both.team == G
    assert parse_spec("a", "saved=emea-weekly_2") == Audience(saved="emea-weekly_2")
    assert parse_spec("a", "SAVED=x").saved == "x"  # keys are case-blind


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "must be an audience spec"),
        (f"tenant={T}", "needs team=G and/or channel=NAME"),
        ("channel=General", "names no tenant"),
        (f"tenant={T};teem={G}", "unknown key 'teem'"),
        (f"tenant={T};General", "'General' is not key=value"),
        (f"tenant={T};channel=General;channel=Help", "channel is given twice"),
        (f"tenant={T};channel=", "channel is empty"),
        ("tenant=contoso;channel=General", "tenant must be a GUID"),
        (f"tenant={T};team=sales", "team must be a GUID"),
        (f"tenant={T};channel={'x' * 51}", "a channel's name, 1-50 printable"),
        (f"tenant={T};channel=a\tb", "a channel's name"),
        (f"saved=x;tenant={T}", "saved=NAME stands alone"),
        ("saved=../etc", "a saved audience's name"),
    ],
)
def test_bad_specs_name_the_spec(spec: str, reason: str) -> None:
    with pytest.raises(AudienceError) as caught:
        parse_spec("--audience", spec)
    assert caught.value.field == "--audience"
    assert reason in caught.value.reason
    assert repr(spec)[:40] in str(caught.value)  # the spec itself is shown
    assert isinstance(caught.value, ValidationError)  # 422 / exit 2, like any bad input


def test_a_list_names_the_bad_one_by_position() -> None:
    with pytest.raises(AudienceError, match=r"^audiences\[1\]: unknown key 'x'"):
        parse_specs("audiences", [f"tenant={T};team={G}", "x=1"])
    with pytest.raises(AudienceError, match="must be a list"):
        parse_specs("audiences", f"tenant={T};team={G}")  # type: ignore[arg-type]


def test_a_saved_definition_is_checked_whole() -> None:
    specs, targets = saved_definition(
        "--audience",
        [f"channel=General;tenant={T}"],
        [{"tenant": T, "group": G, "channel": "19:a@thread.tacv2"}],
    )
    assert specs == [f"tenant={T};channel=General"]
    assert targets == [{"tenant": T, "group": G, "channel": "19:a@thread.tacv2"}]
    with pytest.raises(AudienceError, match="cannot hold another"):
        saved_definition("--audience", ["saved=other"], [])
    with pytest.raises(AudienceError, match="at least one audience spec or target"):
        saved_definition("--audience", [], [])
    with pytest.raises(ValidationError, match=r"targets\[0\]\.group"):
        saved_definition("--audience", [], [{"tenant": T, "group": "x", "channel": "19:a@x"}])


def test_a_resolution_keeps_each_target_once_in_order() -> None:
    one, two = Target(T, G, "19:a@thread.tacv2"), Target(T, G2, "19:b@thread.tacv2")
    resolution = Resolution()
    resolution.add("first", [one, two])
    resolution.add("second", [two, one])
    assert resolution.targets == [one, two]
    assert [len(r.targets) for r in resolution.parts] == [2, 2]
    assert resolution.per_tenant() == {T: 2}


def test_the_estimate_takes_the_slowest_scope_and_the_backlog() -> None:
    settings = Settings(team_rps=4, tenant_rps=50, app_rps=500, limit_guard_ms=0)
    targets = [Target(T, G, f"19:c{i}@thread.tacv2") for i in range(8)]
    found = estimate(settings, targets, {})
    assert found.seconds == pytest.approx(2.0) and found.bound == f"team {G} at 4/s"
    assert (found.backlog, found.backlog_ahead, found.quota_days) == (0, 0, 0)
    assert "about 2.0 s" in found.describe() and "team 4/s" in found.describe()

    behind = estimate(settings, targets, {(T, G): 12, (T, G2): 3})
    assert behind.seconds == pytest.approx(5.0)  # 8 new behind 12 waiting in the team, 4/s
    assert (behind.backlog, behind.backlog_ahead) == (15, 15)

    held = Settings(tenant_limits={T: TenantLimits(tenant_rps=0)})
    stopped = estimate(held, targets, {})
    assert math.isinf(stopped.seconds) and "never while tenant" in stopped.describe()

    alone = estimate(settings, targets[:1], {})
    # One post: its channel's window (1/s) is the slowest.
    assert alone.seconds == pytest.approx(1.0) and alone.bound.startswith("channel 19:c0")

    quota = Settings(channel_daily=1, limit_guard_ms=0)
    twice = estimate(quota, [targets[0], targets[0], targets[0]], {})
    assert twice.quota_days == 2 and "2 more day(s)" in twice.describe()
