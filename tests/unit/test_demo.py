"""``threadcast demo``'s verdicts: each scenario exits 0 only on what it claims (the runs
themselves: ``make demo`` and .ci/plain-install)."""

from __future__ import annotations

from typing import Any

import pytest

from producer import demo
from threadcast.endpoints import CHANNEL_MESSAGES, CHATTHREADS, Switch

N = 300
SWITCH = Switch(CHANNEL_MESSAGES, "2026-12-06T17:00:00+00:00", "400 BadRequest: gone", "w/1")


def outcome(
    attempts: dict[str, dict[str, int]],
    *,
    switch: Switch | None = None,
    refused: int = 0,
    sent: int = N,
    failed: int = 0,
    duplicates: int = 0,
    copy: Switch | None = None,
) -> demo.Outcome:
    final: dict[str, Any] = {
        "sent": sent,
        "failed": failed,
        "unknown": 0,
        "endpoint": {"attempts": attempts},
    }
    stats = {
        "accepted": sent + duplicates,
        "unique": sent,
        "duplicates": duplicates,
        "rejected": {"400": refused} if refused else {},
    }
    return demo.Outcome(N, final, stats, switch, copy)


def today(rerouted: int, **changes: Any) -> demo.Outcome:
    attempts = {CHATTHREADS: {"rerouted": rerouted}, CHANNEL_MESSAGES: {"sent": N}}
    given: dict[str, Any] = {"switch": SWITCH, "copy": SWITCH, "refused": rerouted} | changes
    return outcome(attempts, **given)


def judge(scenario: str, result: demo.Outcome, capsys: pytest.CaptureFixture[str]) -> int:
    code = demo._judge(demo.SCENARIOS[scenario], result)
    capsys.readouterr()
    return code


def test_seed_ok_only_on_chatthreads_without_a_switch(capsys: pytest.CaptureFixture[str]) -> None:
    assert judge("seed", outcome({CHATTHREADS: {"sent": N}}), capsys) == 0
    switched = outcome({CHATTHREADS: {"sent": N}}, switch=SWITCH)
    assert judge("seed", switched, capsys) == 1
    assert judge("seed", outcome({CHATTHREADS: {"sent": N}}, duplicates=1), capsys) == 1


def test_today_ok_prints_the_switch_and_the_dead_endpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert demo._judge(demo.SCENARIOS["today"], today(2)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "demo: OK: 300/300 sent exactly once through channel-messages, none failed; "
        "the switch recorded once; 2 requests met the dead endpoint"
    )
    assert "recorded once (ledger deployment row; Redis has its copy)" in lines[-3]
    assert lines[-2].startswith("demo: dead endpoint: 2 requests met it")


@pytest.mark.parametrize(
    "result",
    [
        today(2, switch=None, copy=None),  # nothing recorded
        today(2, copy=None),  # the workers' copy missing
        today(0, refused=0),  # nothing met the dead endpoint: no switch to show
        today(3, refused=3),  # more than one per worker process
        today(2, refused=3),  # a dead-endpoint answer the ledger does not account for
        today(2, sent=N - 1, failed=1),
        today(2, duplicates=1),
    ],
)
def test_today_fails_on_anything_less(
    result: demo.Outcome, capsys: pytest.CaptureFixture[str]
) -> None:
    assert judge("today", result, capsys) == 1
