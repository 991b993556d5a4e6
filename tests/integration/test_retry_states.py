"""Retry takes only what can be retried: ``failed``, ``unknown``, ``cancelled`` and
``waiting_auth``. Any other state is refused by name -- over HTTP (422), at the CLI (one line)
and from Python (ValidationError) -- and nothing moves: a scheduled broadcast does not go out
early, a retrying delivery keeps its Retry-After, a queued one gets no second gate entry.

Deliveries are put into each state through the ledger, as workers would leave them, on the
real stack (real HTTP API, Redis, a worker, both ledger backends).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from producer import Producer
from producer.cli import main
from tests.integration import books
from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import footprint, wait_for
from threadcast import ids
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import ValidationError
from threadcast.ledger import Claim, DeliveryState, Outcome
from threadcast.ledger.schema import deliveries

KEY = "retry-states-" + "k" * 20
RETRYABLE = ["failed", "unknown", "cancelled", "waiting_auth"]
REFUSED = ["scheduled", "queued", "retrying", "sending", "sent"]


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    # An operator key: the broadcasts here are recorded by Python, not sent with this key.
    keys = {"THREADCAST_API_KEYS": f"operator@ops:{KEY}"}
    server: RunningApi = start_api(settings_from(stack.env | keys))
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as client:
        yield client
    server.stop()


def recorded(stack: Stack, state: str) -> str:
    """A broadcast (never published) whose one delivery is in ``state``; its id."""
    now = datetime.now(UTC)
    target = Target(stack.tenants[0], str(uuid.uuid4()), f"19:rs{uuid.uuid4().hex}@thread.tacv2")
    send_at = now + timedelta(days=1) if state == "scheduled" else None
    broadcast = Broadcast(
        ids.new_broadcast_id(),
        f"<p>{state} {uuid.uuid4()}</p>",
        ContentType.HTML,
        (target,),
        send_at=send_at,
    )
    (delivery,) = broadcast.deliveries()
    stack.ledger.broadcasts.add(broadcast, [delivery], now)
    if state in ("scheduled", "queued"):
        return broadcast.id
    if state == "cancelled":
        stack.ledger.broadcasts.cancel(broadcast.id, now)
        return broadcast.id
    claim = books.claim(stack.ledger, delivery.id, "gone", "c1", timedelta(seconds=600), now)
    assert isinstance(claim, Claim)
    if state != "sending":
        due = now + timedelta(hours=1) if state == "retrying" else None
        outcome = Outcome(DeliveryState(state), http_status=503, next_attempt_at=due)
        assert stack.ledger.deliveries.finish(claim, outcome, now)
    return broadcast.id


def rows(stack: Stack, broadcast_id: str) -> list[tuple[object, ...]]:
    query = select(deliveries).where(deliveries.c.broadcast_id == broadcast_id)
    with stack.ledger.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query).all()]


@pytest.mark.parametrize("state", REFUSED)
def test_the_api_refuses_a_state_that_cannot_be_retried(
    stack: Stack, http: httpx.Client, state: str
) -> None:
    broadcast_id = recorded(stack, state)
    before = rows(stack, broadcast_id), footprint(stack.ledger, stack.redis)
    response = http.post(f"/v1/broadcasts/{broadcast_id}/retry", json={"states": ["failed", state]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [f["field"] for f in error["fields"]] == ["states[1]"]
    assert f"'{state}'" in error["message"]
    assert "cancelled, failed, unknown, waiting_auth" in error["message"]
    assert (rows(stack, broadcast_id), footprint(stack.ledger, stack.redis)) == before


@pytest.mark.parametrize("state", REFUSED)
def test_the_cli_and_python_refuse_it_in_one_line(
    stack: Stack,
    state: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    broadcast_id = recorded(stack, state)
    before = rows(stack, broadcast_id)
    capsys.readouterr()
    assert main(["retry", broadcast_id, "--state", f"unknown,{state}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("threadcast: error: --state:")
    assert f"'{state}'" in err
    with Producer(stack.settings) as producer, pytest.raises(ValidationError) as caught:
        producer.retry(broadcast_id, [state])
    assert caught.value.field == "states[0]" and f"'{state}'" in str(caught.value)
    assert rows(stack, broadcast_id) == before


def test_a_python_caller_naming_no_state_at_all_gets_a_validation_error(stack: Stack) -> None:
    with Producer(stack.settings) as producer, pytest.raises(ValidationError) as caught:
        producer.retry(recorded(stack, "failed"), ["failed", "lost"])
    assert caught.value.field == "states[1]"


def test_every_retryable_state_is_retried_and_sent(stack: Stack, http: httpx.Client) -> None:
    made = {state: recorded(stack, state) for state in RETRYABLE}
    for state, broadcast_id in made.items():
        response = http.post(f"/v1/broadcasts/{broadcast_id}/retry", json={"states": [state]})
        assert response.json() == {"broadcast_id": broadcast_id, "requeued": 1}, state
    for state, broadcast_id in made.items():
        wait_for(
            lambda b=broadcast_id: stack.ledger.broadcasts.counts(b)["sent"] == 1,
            what=f"the {state} delivery re-sent",
        )
