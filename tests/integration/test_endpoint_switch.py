"""Graph as it answers today: ``THREADCAST_ENDPOINT=auto`` meets the removed beta segment.

The simulator answers the seed's chatthreads request as Microsoft does now (400 "Resource
not found for the segment 'chatThreads'."); the deployment must switch to the v1.0 successor
once, post every delivery there without using up an attempt, record which endpoint each
attempt used, and never try the dead endpoint again -- not after a restart, not after Redis
lost its copy of the switch.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from producer import Producer, export, status
from producer.accounts import list_accounts
from producer.processes import start_worker
from producer.signin import sign_in
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.constants import ENDPOINT_KEY
from threadcast.endpoints import CHANNEL_MESSAGE_SEND, CHANNEL_MESSAGES, CHATTHREADS, recorded


@pytest.fixture(autouse=True, scope="module")
def removed_segment(stack: Stack) -> Iterator[None]:
    stack.sim.configure(chatthreads_removed=True)
    yield
    stack.sim.configure(chatthreads_removed=False)


def _send(stack: Stack, n: int) -> str:
    content = f"<p>today {uuid.uuid4()}</p>"  # the broadcast's posts are found by it
    targets = [
        {
            "tenant": stack.tenants[i % 2],
            "group": str(uuid.uuid4()),
            "channel": f"19:t{i}@thread.tacv2",
        }
        for i in range(n)
    ]
    with Producer(stack.settings) as producer:
        broadcast = producer.send(content, targets, content_type="html").broadcast_id
    wait_for(lambda: _settled(stack, broadcast) == n, what=f"{n} deliveries to settle")
    return broadcast


def _settled(stack: Stack, broadcast: str) -> int:
    counts = stack.ledger.broadcasts.counts(broadcast)
    return int(counts["sent"] + counts["failed"] + counts["unknown"])


def _attempts(stack: Stack, broadcast: str) -> list[tuple[str, int, str, int, str]]:
    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.delivery_id, a.number, a.endpoint, a.http_status, a.outcome "
                "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b ORDER BY a.delivery_id, a.number"
            ),
            {"b": broadcast},
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _rejected_400(stack: Stack) -> int:
    return int(stack.sim.stats()["rejected"].get("400", 0))


def test_the_deployment_switches_once_and_every_delivery_is_sent(stack: Stack) -> None:
    broadcast = _send(stack, 24)

    counts = stack.ledger.broadcasts.counts(broadcast)
    assert (counts["sent"], counts["failed"], counts["unknown"]) == (24, 0, 0)
    stored = stack.ledger.deliveries.message(broadcast)
    assert stored is not None
    content = stored.content
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == 24 and {p["endpoint"] for p in posts} == {CHANNEL_MESSAGES}
    assert len({p["channel"] for p in posts}) == 24

    # A worker process tests an untried endpoint with one post before it sends the rest.
    attempts = _attempts(stack, broadcast)
    rerouted = [a for a in attempts if a[4] == "rerouted"]
    assert len(rerouted) == 1  # one worker process: one probe
    assert all(a[2] == CHATTHREADS and a[3] == 400 for a in rerouted)
    for delivery, number, *_ in rerouted:
        after = [a for a in attempts if a[0] == delivery and a[1] == number + 1]
        assert [(a[2], a[3], a[4]) for a in after] == [(CHANNEL_MESSAGES, 201, "sent")]
    sent = [a for a in attempts if a[4] == "sent"]
    assert len(sent) == 24 and {a[2] for a in sent} == {CHANNEL_MESSAGES}
    with stack.ledger.engine.connect() as conn:
        budgets = (
            conn.execute(
                text("SELECT attempts - attempt_base FROM deliveries WHERE broadcast_id = :b"),
                {"b": broadcast},
            )
            .scalars()
            .all()
        )
    assert set(budgets) == {1}  # the rerouted request did not use up an attempt

    switch = recorded(stack.ledger.deployment)
    assert switch is not None and switch.endpoint == CHANNEL_MESSAGES
    assert "Resource not found for the segment" in switch.reason
    assert stack.redis.get(ENDPOINT_KEY) is not None
    assert stack.worker.log_text().count("this deployment now posts to v1.0") == 1

    exported = io.StringIO()
    export.write(stack.ledger.audit.records(broadcast), "jsonl", exported)
    logged = [
        a for line in exported.getvalue().splitlines() for a in json.loads(line)["attempt_log"]
    ]
    assert {a["endpoint"] for a in logged} == {CHATTHREADS, CHANNEL_MESSAGES}

    shown = status.report(stack.ledger, broadcast)
    assert shown.endpoint.active == CHANNEL_MESSAGES
    assert shown.endpoint.attempts[CHANNEL_MESSAGES] == {"sent": 24}
    assert "switched from chatthreads" in status.render(shown)
    assert shown.errors == []  # a rerouted attempt is not an error
    assert {a.endpoint for a in list_accounts(stack.settings)} == {CHANNEL_MESSAGES}


def test_a_restart_and_a_lost_redis_never_try_the_dead_endpoint_again(stack: Stack) -> None:
    if recorded(stack.ledger.deployment) is None:
        _send(stack, 2)  # run alone: make the switch first
    stack.worker.stop()
    stack.redis.delete(ENDPOINT_KEY)  # Redis forgot; the ledger remembers
    before = _rejected_400(stack)
    worker = start_worker(stack.workdir / "worker-again.log", env=stack.env)
    try:
        broadcast = _send(stack, 10)
    finally:
        worker.stop()
    assert _rejected_400(stack) == before
    assert {a[2] for a in _attempts(stack, broadcast)} == {CHANNEL_MESSAGES}
    assert stack.ledger.broadcasts.counts(broadcast)["sent"] == 10
    assert stack.redis.get(ENDPOINT_KEY) is not None  # copied back from the ledger


def test_login_after_the_switch_asks_only_for_channel_message_send(stack: Stack) -> None:
    if recorded(stack.ledger.deployment) is None:
        _send(stack, 2)
    tenant = str(uuid.uuid4())
    sign_in(stack.settings, tenant, lambda _text: None)
    [account] = [a for a in list_accounts(stack.settings) if a.tenant == tenant]
    assert account.scopes == [CHANNEL_MESSAGE_SEND]
    assert account.state == "ok"
