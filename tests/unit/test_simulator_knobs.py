"""The knobs: one table behind the CLI flags and POST /_sim/config, validated the same way."""

from __future__ import annotations

import pytest

from simulator.cli import build_parser, config_from
from simulator.knobs import (
    DOCUMENTED_LIMITS,
    KNOBS,
    FaultSettings,
    GraphSettings,
    Knob,
    KnobError,
    Knobs,
    ThrottleLimits,
)


def test_everything_is_off_by_default() -> None:
    knobs = Knobs()
    assert not knobs.limits.enabled
    assert knobs.to_json() == {
        "app_rps": 0,
        "tenant_rps": 0,
        "team_rps": 0,
        "channel_rps": 0,
        "channel_daily": 0,
        "fault_503": 0.0,
        "fault_503_bare": 0.0,
        "fault_504": 0.0,
        "fault_retry_after": 1,
        "fault_drop": 0.0,
        "fault_accept_delay": 0.0,
        "fault_accept_delay_seconds": 30.0,
        "latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "fault_seed": None,
        "chatthreads_removed": False,
    }
    assert {knob.name for knob in KNOBS} == set(knobs.to_json())


def test_changes_apply_to_the_right_group_and_leave_the_rest() -> None:
    changes = {"team_rps": 2, "channel_rps": 1, "fault_503": 0.5, "fault_seed": 3}
    knobs = Knobs().changed({**changes, "chatthreads_removed": True})
    assert knobs.limits == ThrottleLimits(team_rps=2, channel_rps=1)
    assert knobs.limits.enabled and ThrottleLimits(channel_rps=1).enabled
    assert knobs.faults == FaultSettings(fault_503=0.5, fault_seed=3)
    assert knobs.graph == GraphSettings(chatthreads_removed=True)
    assert knobs.changed({"fault_seed": None}).faults.fault_503 == 0.5
    assert knobs.changed({"fault_seed": None}).graph.chatthreads_removed
    assert not knobs.changed({"chatthreads_removed": False}).graph.chatthreads_removed


def test_throttle_defaults_are_the_documented_limits_and_named_limits_win() -> None:
    knobs = Knobs().changed({"throttle_defaults": True, "team_rps": 2})
    assert knobs.limits == ThrottleLimits(
        app_rps=500, tenant_rps=50, team_rps=2, channel_rps=1, channel_daily=3000
    )
    assert Knobs().changed({"throttle_defaults": True}).limits == DOCUMENTED_LIMITS
    # Graph documents 1 request/s per app per tenant on one channel (and 1 POST/s per user).
    assert DOCUMENTED_LIMITS.channel_rps == 1
    assert Knobs().changed({"throttle_defaults": True, "channel_rps": 0}).limits.channel_rps == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"team_rps": -1}, "'team_rps' must be a non-negative integer"),
        ({"team_rps": 1.5}, "'team_rps' must be a non-negative integer"),
        ({"team_rps": True}, "'team_rps' must be a non-negative integer"),
        ({"fault_503": 1.5}, "'fault_503' must be a fraction"),
        ({"fault_503": "0.5"}, "'fault_503' must be a number"),
        ({"latency_ms": -3}, "'latency_ms' must be a non-negative number"),
        ({"fault_seed": 1.5}, "'fault_seed' must be an integer or null"),
        ({"throttle_defaults": 1}, "'throttle_defaults' must be true or false"),
        ({"channel_rps": -1}, "'channel_rps' must be a non-negative integer"),
        ({"chatthreads_removed": 1}, "'chatthreads_removed' must be true or false"),
        ({"chatthreads_removed": "true"}, "'chatthreads_removed' must be true or false"),
        ({"team-rps": 1}, "unknown setting 'team-rps'"),
    ],
)
def test_bad_values_are_refused_by_name(changes: dict[str, object], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        Knobs().changed(changes)


def test_the_command_line_sets_the_same_knobs() -> None:
    argv = ["--throttle-defaults", "--team-rps", "2", "--fault-504", "0.25", "--fault-seed", "9"]
    knobs = config_from(build_parser().parse_args(argv)).knobs
    assert knobs == Knobs().changed(
        {"throttle_defaults": True, "team_rps": 2, "fault_504": 0.25, "fault_seed": 9}
    )
    every_flag = [part for knob in KNOBS for part in (knob.flag, _one(knob))]
    assert config_from(build_parser().parse_args(every_flag)).knobs.to_json() == {
        knob.name: True if knob.is_switch else 1 for knob in KNOBS
    }


def _one(knob: Knob) -> str:
    return "true" if knob.is_switch else "1"


@pytest.mark.parametrize(
    ("argv", "removed"),
    [
        (["--chatthreads-removed"], True),  # a bare switch is true
        (["--chatthreads-removed", "true"], True),
        (["--chatthreads-removed", "false"], False),
        (["--chatthreads-removed", "--channel-rps", "2"], True),
        ([], False),
    ],
)
def test_the_chatthreads_switch_on_the_command_line(argv: list[str], removed: bool) -> None:
    assert config_from(build_parser().parse_args(argv)).knobs.graph.chatthreads_removed is removed


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault-503", "2"],
        ["--app-rps", "x"],
        ["--latency-ms", "-1"],
        ["--fault-seed", "a"],
        ["--channel-rps", "-1"],
        ["--chatthreads-removed", "yes"],
    ],
)
def test_bad_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
