"""Fault injection: each fault hits its fraction, reproducibly from a seed, and is counted."""

from __future__ import annotations

import pytest

from simulator.errors import ConnectionDropError, GraphError
from simulator.faults import FaultInjector
from simulator.knobs import FaultSettings
from simulator.policies import PolicyChain
from simulator.posts import PostAttempt

ATTEMPT = PostAttempt("t", "c", "g", "19:a", 1, "hi", b"{}", "r", None, None, 0.0)


def _outcome(faults: FaultInjector) -> str:
    """What one request gets from the fault policy alone."""
    try:
        faults.admit(ATTEMPT)
    except ConnectionDropError:
        return "dropped"
    except GraphError as exc:
        return f"{exc.status} {exc.code} {exc.headers.get('Retry-After')}"
    held = faults.hold(ATTEMPT)
    return "ok" if held is None else f"held {held:g}"


def test_off_by_default() -> None:
    faults = FaultInjector(FaultSettings())
    assert {_outcome(faults) for _ in range(1000)} == {"ok"}
    assert faults.latency() == 0.0
    assert set(faults.counts_json().values()) == {0}


@pytest.mark.parametrize(
    ("settings", "outcome", "counter"),
    [
        (FaultSettings(fault_drop=1), "dropped", "dropped"),
        (FaultSettings(fault_503=1, fault_retry_after=7), "503 ServiceUnavailable 7", "503"),
        (FaultSettings(fault_503_bare=1), "503 ServiceUnavailable None", "503_bare"),
        (FaultSettings(fault_504=1), "504 GatewayTimeout None", "504"),
        (
            FaultSettings(fault_accept_delay=1, fault_accept_delay_seconds=2.5),
            "held 2.5",
            "accepted_then_delayed",
        ),
    ],
)
def test_each_fault(settings: FaultSettings, outcome: str, counter: str) -> None:
    faults = FaultInjector(settings)
    assert [_outcome(faults) for _ in range(3)] == [outcome] * 3
    assert faults.counts_json() == {
        name: 3 if name == counter else 0 for name in faults.counts_json()
    }


def test_fractions_are_independent_draws_and_seeded_runs_repeat() -> None:
    settings = FaultSettings(fault_503=0.25, fault_504=0.25, fault_seed=42)
    faults = FaultInjector(settings)
    first = [_outcome(faults) for _ in range(2000)]
    counts = faults.counts_json()
    assert 400 < counts["503"] < 600  # a quarter
    assert 300 < counts["504"] < 450  # a quarter of the three quarters left
    faults.reset()
    assert [_outcome(faults) for _ in range(2000)] == first
    faults.configure(settings)
    assert [_outcome(faults) for _ in range(2000)] == first


def test_latency_with_jitter() -> None:
    faults = FaultInjector(FaultSettings(latency_ms=100, latency_jitter_ms=50, fault_seed=1))
    delays = [faults.latency() for _ in range(1000)]
    assert 0.1 <= min(delays) < 0.105
    assert 0.145 < max(delays) <= 0.15


def test_the_chain_asks_every_policy_and_the_first_refusal_wins() -> None:
    drop = FaultInjector(FaultSettings(fault_drop=1))
    unavailable = FaultInjector(FaultSettings(fault_503=1))
    with pytest.raises(ConnectionDropError):
        PolicyChain([drop, unavailable]).admit(ATTEMPT)
    assert unavailable.counts_json()["503"] == 0
    slow = FaultInjector(FaultSettings(fault_accept_delay=1, fault_accept_delay_seconds=3))
    slower = FaultInjector(FaultSettings(fault_accept_delay=1, fault_accept_delay_seconds=5))
    assert PolicyChain([slow, slower]).admit(ATTEMPT) == 5
    assert PolicyChain([]).admit(ATTEMPT) is None
