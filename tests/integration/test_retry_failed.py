"""``threadcast retry`` on a broadcast with failures re-sends exactly the failed ones: each
once, nothing that was sent, and (with ``--state failed``) nothing whose fate is unknown.

Failures are made by the module's own simulator: a fraction of 504s with a retry budget of
one attempt (THREADCAST_MAX_ATTEMPTS=1) fails those deliveries; answers held back past the
HTTP timeout make others ``unknown``. The faults are then switched off and the operator
retries through the CLI.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from producer import Producer
from producer.cli import main
from simulator.process import RunningSimulator
from tests.integration import chaostools
from tests.integration.chaostools import (
    MOVING,
    Delivery,
    configure,
    count_in,
    ledger_deliveries,
    posts_of,
    spread,
)
from tests.integration.conftest import Stack
from tests.integration.stack import SimAdmin, wait_for

# This module runs on a simulator of its own: the fixtures sim, sim_admin and faults.
own_sim = chaostools.own_sim
own_sim_admin = chaostools.own_sim_admin
faults_off_after = chaostools.faults_off_after

STACK_ENV = {
    "THREADCAST_MAX_ATTEMPTS": "1",
    "THREADCAST_HTTP_TIMEOUT": "2",
    "THREADCAST_LOG_LEVEL": "WARNING",
}
TARGETS = 150


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)


def send_through_faults(stack: Stack, sim: RunningSimulator, **knobs: float) -> tuple[str, str]:
    """A broadcast sent while the faults are on, settled; then the faults go off."""
    configure(sim, fault_seed=5, **knobs)
    content = f"<p>retry {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        bid = producer.send(content, spread(stack.tenants, TARGETS, 15)).broadcast_id
    wait_for(
        lambda: count_in(stack.ledger, bid, MOVING) == 0,
        timeout=120,
        what="every delivery to settle",
    )
    configure(sim, fault_504=0, fault_accept_delay=0)
    return bid, content


def by_state(rows: list[Delivery]) -> dict[str, dict[str, Delivery]]:
    found: dict[str, dict[str, Delivery]] = {}
    for row in rows:
        found.setdefault(row.state, {})[row.id] = row
    return found


def retry(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["retry", *argv]) == 0
    return capsys.readouterr().out


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("postgresql")
def test_retry_resends_exactly_the_failed_ones(
    stack: Stack,
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    faults: None,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bid, content = send_through_faults(stack, sim, fault_504=0.3)
    before = by_state(ledger_deliveries(stack.ledger, bid))
    failed = before["failed"]
    assert set(before) == {"sent", "failed"} and failed
    assert {row.last_status for row in failed.values()} == {504}
    posted = len(posts_of(sim_admin, content))
    assert posted == len(before["sent"])

    assert f"re-queued {len(failed)} deliveries" in retry(capsys, bid)
    wait_for(
        lambda: stack.ledger.broadcasts.counts(bid)["sent"] == TARGETS, what="the failed ones sent"
    )
    posts = posts_of(sim_admin, content)
    again = Counter((p["tenant"], p["group"], p["channel"]) for p in posts[posted:])
    assert again == Counter(row.target for row in failed.values())  # each failed one, once
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == len(posts) == TARGETS
    after = {row.id: row for row in ledger_deliveries(stack.ledger, bid)}
    # A fresh retry budget: one more attempt each, although the budget was used up.
    assert all(after[d].attempts == row.attempts + 1 for d, row in failed.items())
    assert all(after[d].attempts == row.attempts for d, row in before["sent"].items())
    assert "re-queued 0 deliveries" in retry(capsys, bid)  # nothing left to retry


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("sqlite")
def test_retry_of_failed_leaves_unknown_alone(
    stack: Stack,
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    faults: None,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bid, content = send_through_faults(
        stack, sim, fault_504=0.3, fault_accept_delay=0.05, fault_accept_delay_seconds=4
    )
    before = by_state(ledger_deliveries(stack.ledger, bid))
    failed, unknown = before["failed"], before["unknown"]
    assert set(before) == {"sent", "failed", "unknown"}
    posted = len(posts_of(sim_admin, content))  # the unknown ones did reach Graph here

    assert f"re-queued {len(failed)} deliveries" in retry(capsys, bid, "--state", "failed")
    wait_for(
        lambda: stack.ledger.broadcasts.counts(bid)["sent"] == TARGETS - len(unknown),
        what="the failed ones sent",
    )
    posts = posts_of(sim_admin, content)
    again = Counter((p["tenant"], p["group"], p["channel"]) for p in posts[posted:])
    assert again == Counter(row.target for row in failed.values())
    after = by_state(ledger_deliveries(stack.ledger, bid))
    assert after["unknown"] == unknown  # untouched: re-sending them could post twice
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == len(posts)
