"""End to end, edit and recall: producer → ledger and gate → dispatcher → real worker → the
simulator over HTTPS (PATCH and softDelete of Graph v1.0 channel messages) → ledger.

Each message a broadcast created is edited once and soft-deleted once, under the edits' own
limits (the simulator enforces Graph's, here lowered so that the limiter has to work); a
delivery the seed's chatthreads endpoint sent has no message id and says so; a personal
broadcast's edit is filled in per delivery; a runner that died mid-change is taken over and
what it had in flight is made again, leaving each message changed once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from producer.client import Producer
from simulator.process import RunningSimulator
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from tests.integration.test_rich_delivery import CARD, PNG, accept, channels, settle
from threadcast.contract import Broadcast, ContentType
from threadcast.errors import ValidationError
from threadcast.ledger.changes import ChangeState, ItemState
from threadcast.ledger.schema import broadcast_changes, change_deliveries
from threadcast.lifecycle import gates
from threadcast.lifecycle.sweeps import ChangeSweep
from threadcast.message import Card, Image, Importance, MessageParts

EDIT_TENANT_RPS = 5
STACK_ENV = {"THREADCAST_CHANGES": "true", "THREADCAST_EDIT_TENANT_RPS": str(EDIT_TENANT_RPS)}


@pytest.fixture(scope="module")
def admin(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.admin_url, verify=sim.ssl_context(), timeout=30) as http:
        # Graph's edit limits, per tenant lowered to what this stack is configured for.
        http.post("/config/v1", json={"edit_tenant_rps": EDIT_TENANT_RPS, "edit_app_rps": 300})
        try:
            yield http
        finally:
            http.post("/config/v1", json={"edit_tenant_rps": 0, "edit_app_rps": 0})


@pytest.fixture
def producer(stack: Stack) -> Iterator[Producer]:
    with Producer(stack.settings) as made:
        yield made


def messages_of(admin: httpx.Client, team: str) -> dict[str, dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = admin.get("/messages", params={"offset": offset, "limit": 1000})
        batch = page.raise_for_status().json()["messages"]
        if not batch:
            return {m["channel"]: m for m in found if m["team"] == team}
        found += batch
        offset += len(batch)


def finished(stack: Stack, change_id: str) -> None:
    wait_for(
        lambda: stack.ledger.changes.get(change_id).state is ChangeState.DONE,
        timeout=90,
        what=f"change {change_id} done",
    )


def rich(stack: Stack, team: str, n: int) -> Broadcast:
    parts = MessageParts(
        subject="Road works",
        importance=Importance.URGENT,
        cards=(Card.parse("cards[0]", "card1", CARD),),
        images=(Image.parse("images[0]", "logo", PNG),),
    )
    body = '<p>Closed Friday</p><attachment id="card1"></attachment>'
    return Broadcast(
        f"rich-{uuid.uuid4()}", body, ContentType.HTML, channels(stack, team, n), parts=parts
    )


@pytest.mark.backends("postgresql")
def test_every_message_is_edited_once_then_recalled_once_within_the_edit_limits(
    stack: Stack, admin: httpx.Client, producer: Producer
) -> None:
    team = str(uuid.uuid4())
    broadcast = rich(stack, team, 12)
    accept(stack, broadcast)
    settle(stack, broadcast)
    throttled_before = admin.get("/throttle").json()

    made = producer.edit(
        broadcast.id,
        '<p>Closed <b>Monday</b></p><attachment id="card1"></attachment>',
        subject="Road works moved",
        importance="high",
        cards=[{"id": "card1", "content": CARD}],
        images=[{"name": "logo", "data": PNG}],
        source="ops",
    )
    assert made.created and made.change.counts[ItemState.PENDING] == 12
    again = producer.edit(
        broadcast.id,
        '<p>Closed <b>Monday</b></p><attachment id="card1"></attachment>',
        subject="Road works moved",
        importance="high",
        cards=[{"id": "card1", "content": CARD}],
        images=[{"name": "logo", "data": PNG}],
    )
    assert not again.created and again.change.id == made.change.id  # the same edit, once
    finished(stack, made.change.id)
    done = stack.ledger.changes.get(made.change.id)
    assert done.counts[ItemState.DONE] == 12 and done.counts[ItemState.FAILED] == 0

    found = messages_of(admin, team)
    assert len(found) == 12
    for message in found.values():
        assert message["history"] == "created>edited"
        edited = message["versions"][1]
        assert edited["subject"] == "Road works moved" and edited["importance"] == "high"
        assert "<b>Monday</b>" in edited["body"]["content"]

    recall = producer.recall(broadcast.id, source="ops")
    assert recall.created and recall.change.number == 2
    finished(stack, recall.change.id)
    found = messages_of(admin, team)
    assert {m["history"] for m in found.values()} == {"created>edited>soft_deleted"}
    assert all(m["repeated_soft_deletes"] == 0 for m in found.values())

    # Within the edits' limits: Graph answered no 429 to any of them.
    throttle = admin.get("/throttle").json()
    assert throttle["totals"]["throttled"] == throttled_before["totals"]["throttled"]
    # Each tenant's edits within its limit (all 12 channels in one team: threadcast's team
    # limit, 4/s, which edits share with posts, binds first).
    for tenant in stack.tenants:
        assert 0 < throttle["scopes"][f"edit_tenant:{tenant}"]["max_window"] <= EDIT_TENANT_RPS
    # One attempt each, each recorded with Graph's answer.
    first = next(iter(stack.ledger.changes.items(recall.change.id)))
    attempts = stack.ledger.changes.attempts(recall.change.id, first)
    assert [(a.outcome, a.http_status) for a in attempts] == [("done", 204)]

    # A recalled broadcast is not edited, nor sent again.
    with pytest.raises(ValidationError, match="recalled"):
        producer.edit(broadcast.id, "<p>again</p>")
    with pytest.raises(ValidationError, match="recalled"):
        producer.retry(broadcast.id)
    assert producer.recall(broadcast.id).change.id == recall.change.id


@pytest.mark.backends("postgresql")
def test_a_message_sent_by_chatthreads_has_no_id_to_change_and_says_so(
    stack: Stack, admin: httpx.Client, producer: Producer
) -> None:
    team = str(uuid.uuid4())
    broadcast = Broadcast(
        f"plain-{uuid.uuid4()}", "<p>plain</p>", ContentType.HTML, channels(stack, team, 3)
    )
    accept(stack, broadcast)  # auto, not switched: the seed's endpoint, which answers 204
    settle(stack, broadcast)
    made = producer.edit(broadcast.id, "<p>changed</p>")
    assert made.change.counts[ItemState.NO_MESSAGE_ID] == 3
    finished(stack, made.change.id)
    assert stack.ledger.changes.get(made.change.id).counts[ItemState.NO_MESSAGE_ID] == 3
    assert messages_of(admin, team) == {}


@pytest.mark.backends("postgresql")
def test_a_personal_broadcast_is_edited_with_each_channels_own_variables(
    stack: Stack, admin: httpx.Client, producer: Producer
) -> None:
    team = str(uuid.uuid4())
    targets = channels(stack, team, 3, team_name=["Eng", "Ops", "Sales"])
    broadcast = Broadcast(
        f"mine-{uuid.uuid4()}",
        "<p>Hi {{ team_name }}</p>",
        ContentType.HTML,
        targets,
        parts=MessageParts(subject="For {{ team_name }}"),
        personal=True,
    )
    accept(stack, broadcast)
    settle(stack, broadcast)
    with pytest.raises(ValidationError, match=r"targets\[0\]\.region"):
        producer.edit(broadcast.id, "<p>Bye {{ region }}</p>")
    assert len(stack.ledger.changes.of_broadcast(broadcast.id)) == 0  # nothing written

    made = producer.edit(broadcast.id, "<p>Bye {{ team_name }}</p>", subject="{{ team_name }}!")
    finished(stack, made.change.id)
    found = messages_of(admin, team)
    assert {found[t.channel]["versions"][-1]["body"]["content"] for t in targets} == {
        "<p>Bye Eng</p>",
        "<p>Bye Ops</p>",
        "<p>Bye Sales</p>",
    }
    assert found[targets[2].channel]["versions"][-1]["subject"] == "Sales!"


@pytest.mark.backends("postgresql")
def test_a_change_whose_runner_died_is_taken_over_and_each_message_changed_once(
    stack: Stack, admin: httpx.Client, producer: Producer
) -> None:
    team = str(uuid.uuid4())
    broadcast = rich(stack, team, 4)
    accept(stack, broadcast)
    settle(stack, broadcast)
    gate = gates.changes(stack.redis, stack.settings)
    made = producer.recall(broadcast.id)
    # As if a worker had taken it, marked every message in flight, and died before asking
    # Graph: its lease ran out, and Redis lost the change too.
    with stack.ledger.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(
            update(broadcast_changes)
            .where(broadcast_changes.c.id == made.change.id)
            .values(runner="dead-worker", lease_until=past)
        )
        conn.execute(
            update(change_deliveries)
            .where(change_deliveries.c.change_id == made.change.id)
            .values(state=ItemState.IN_FLIGHT.value)
        )
    gate.finished(made.change.id)
    # The scheduler's sweep finds it running with no live runner and announces it again.
    ChangeSweep(stack.ledger, gate).run(datetime.now(UTC))
    finished(stack, made.change.id)
    found = messages_of(admin, team)
    assert {m["history"] for m in found.values()} == {"created>soft_deleted"}
    assert stack.ledger.changes.get(made.change.id).counts[ItemState.DONE] == 4


@pytest.mark.backends("postgresql")
def test_a_recall_supersedes_a_running_edit_and_no_edit_lands_after_it(
    stack: Stack, admin: httpx.Client, producer: Producer
) -> None:
    team = str(uuid.uuid4())
    broadcast = rich(stack, team, 16)  # one team: its 4/s makes the edit take ~4 s
    accept(stack, broadcast)
    settle(stack, broadcast)
    body = '<p>Closed <b>Tuesday</b></p><attachment id="card1"></attachment>'
    cards = [{"id": "card1", "content": CARD}]
    images = [{"name": "logo", "data": PNG}]
    edit = producer.edit(broadcast.id, body, cards=cards, images=images)
    wait_for(
        lambda: stack.ledger.changes.get(edit.change.id).counts[ItemState.DONE] >= 2,
        what="the edit under way",
    )
    recall = producer.recall(broadcast.id)
    assert recall.superseded == [edit.change.id]
    finished(stack, recall.change.id)
    edited = stack.ledger.changes.get(edit.change.id)
    assert edited.state is ChangeState.SUPERSEDED
    assert edited.counts[ItemState.FAILED] == 0  # no PATCH reached a deleted message
    assert edited.counts[ItemState.SUPERSEDED] > 0  # it stopped before the end
    found = messages_of(admin, team)
    # Every message deleted once, last; some were edited first, none after.
    assert {m["history"] for m in found.values()} <= {
        "created>soft_deleted",
        "created>edited>soft_deleted",
    }
    assert len(found) == 16
