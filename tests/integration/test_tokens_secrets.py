"""No token the identity platform issued is ever written down: not in a log line (at DEBUG,
text or JSON), not in the ledger, not in Redis, not in CLI output.

A whole broadcast runs with every token path taken (sign-in, a 401 and its refresh, a
revoked sign-in and a new login), then every place threadcast writes to is searched for
each access and refresh token the simulator issued to the tenants involved, whole and in
part (its first and last 20 characters).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.cli import main
from producer.processes import WorkerProcess, start_worker
from tests.conftest import BACKENDS
from tests.integration.conftest import Stack
from tests.integration.tokentools import (
    leaks,
    ledger_texts,
    redis_texts,
    send,
    states,
    wait_settled,
)

STACK_ENV = {"THREADCAST_LOG_LEVEL": "DEBUG"}


@pytest.fixture
def json_worker(stack: Stack) -> Iterator[WorkerProcess]:
    """A second worker on the same queue, logging JSON (also at DEBUG)."""
    worker = start_worker(
        stack.workdir / "worker-json.log", env=stack.env | {"THREADCAST_LOG_JSON": "true"}
    )
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.parametrize("stack", [BACKENDS[-1]], indirect=True)  # one backend is enough
def test_no_token_is_written_anywhere(
    stack: Stack,
    json_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    refreshed, relogged = stack.tenants
    outputs: list[str] = []

    first = send(stack.settings, stack.tenants, 6, "leak")
    assert states(wait_settled(stack.ledger, first)) == {"sent": 12}
    stack.sim.revoke(refreshed, access_tokens_only=True)  # a 401, then a refresh
    second = send(stack.settings, [refreshed], 6, "leak401")
    assert states(wait_settled(stack.ledger, second)) == {"sent": 6}
    stack.sim.revoke(relogged)  # a 401, invalid_grant, waiting, then a login
    third = send(stack.settings, [relogged], 4, "leakdead")
    assert states(wait_settled(stack.ledger, third)) == {"waiting_auth": 4}
    outputs.append(cli(capsys, "login", "--tenant", relogged))
    assert states(wait_settled(stack.ledger, third)) == {"sent": 4}
    json_worker.stop()  # its log is complete

    for broadcast in (first, second, third):
        outputs.append(cli(capsys, "status", broadcast.broadcast_id, "--json"))
    outputs += [cli(capsys, "accounts", "--json"), cli(capsys, "accounts")]
    outputs += [cli(capsys, "export"), cli(capsys, "export", "--format", "csv")]
    assert all(third.broadcast_id in out for out in outputs[-2:])  # the exports hold it all

    tokens = [t for tenant in stack.tenants for t in stack.sim.issued_tokens(tenant)]
    assert len(tokens) >= 4 * len(stack.tenants)  # sign-ins, refreshes and a re-login
    logs = {"text": stack.worker.log_text(), "json": json_worker.log_text()}
    assert " DEBUG " in logs["text"] and '"level": "DEBUG"' in logs["json"]
    places = {
        **{f"{kind} log": text for kind, text in logs.items()},
        **ledger_texts(stack.ledger),
        **redis_texts(stack.redis),
        **{f"CLI output {i}": out for i, out in enumerate(outputs)},
    }
    assert any(k.startswith("ledger token_caches") for k in places)
    assert any(k.startswith("redis threadcast:tokencache:") for k in places)
    canary = f"log line with a truncated token {tokens[-1][:24]}..."
    assert leaks(tokens, {"canary": canary}) == ["canary"]  # the search does find a leak
    assert leaks(tokens, places) == []


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err
