"""The change book's decisions a runner relies on, on each ledger backend: when a change is
done, who may take it, what a retry after an edit does, which items a runner reads.

The broadcasts are recorded and sent through the ledger's own calls (no worker), as in
test_change_surfaces.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from producer.client import Producer
from tests.integration import books
from tests.integration.test_change_surfaces import (
    LEASE,
    TENANT,
    World,
    run_change,
    sent_broadcast,
    world,  # noqa: F401 - the fixture, per backend
)
from threadcast.ledger import Claim, DeliveryState, Outcome
from threadcast.ledger.changes import ChangeKind, ChangeState, ItemState, NewChange, Take


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_change_is_done_only_once_every_delivery_sent_meanwhile_was_taken_in(
    world: World,  # noqa: F811
) -> None:
    sent = sent_broadcast(world, with_id=2, without_id=0, queued=1)
    book = world.ledger.changes
    made = book.create(sent.broadcast_id, NewChange(ChangeKind.RECALL, "svc"), _now()).change
    run_change(world, made.id, dict.fromkeys(sent.with_id, ItemState.DONE))
    late = sent.queued[0]
    assert not book.complete(made.id, _now())  # its queued delivery may still be sent
    # Sent now, after the runner's last sync: the change must not be done without it.
    claim = books.claim(world.ledger, late, "w1", str(uuid.uuid4()), LEASE, _now())
    assert isinstance(claim, Claim)
    world.ledger.deliveries.finish(
        claim, Outcome(DeliveryState.SENT, 201, message_id="m-x"), _now()
    )
    assert not book.complete(made.id, _now())
    assert book.sync(made.id, _now()) == 1 and book.items(made.id)[late] is ItemState.PENDING
    assert not book.complete(made.id, _now())
    run_change(world, made.id, {late: ItemState.DONE})
    assert book.complete(made.id, _now())
    assert book.get(made.id).state is ChangeState.DONE


def test_one_runner_takes_a_change_and_another_only_once_its_lease_ran_out(
    world: World,  # noqa: F811
) -> None:
    sent = sent_broadcast(world, queued=0)
    book = world.ledger.changes
    made = book.create(sent.broadcast_id, NewChange(ChangeKind.RECALL, "svc"), _now()).change
    now = _now()
    assert book.take(made.id, "a", now, now + timedelta(seconds=60)) is Take.TAKEN
    assert book.take(made.id, "b", now, now + timedelta(seconds=60)) is Take.HELD
    later = now + timedelta(seconds=61)
    assert book.take(made.id, "b", later, later + timedelta(seconds=60)) is Take.TAKEN
    # "a" lost it: its renewal says so.
    assert not book.renew(made.id, "a", later, later + timedelta(seconds=60))


def test_a_retry_after_an_edit_runs_the_edit_again_for_what_it_sends(
    world: World,  # noqa: F811
) -> None:
    sent = sent_broadcast(world, with_id=1, without_id=0, queued=0)
    settings = world.settings
    with Producer(settings) as producer:
        made = producer.edit(sent.broadcast_id, "<p>changed</p>").change
        run_change(world, made.id, {sent.with_id[0]: ItemState.DONE})
        assert world.ledger.changes.complete(made.id, _now())
        assert producer.retry(sent.broadcast_id) == 1  # its failed delivery goes again
    assert world.ledger.changes.get(made.id).state is ChangeState.RUNNING
    assert world.ledger.changes.items(made.id)[sent.failed[0]] is ItemState.NOT_SENT


def test_a_runner_reads_past_a_full_tenants_items(world: World) -> None:  # noqa: F811
    sent = sent_broadcast(world, with_id=3, without_id=0, queued=0)
    book = world.ledger.changes
    made = book.create(sent.broadcast_id, NewChange(ChangeKind.RECALL, "svc"), _now()).change
    assert len(book.due(made.id, _now(), 10)) == 3
    assert book.due(made.id, _now(), 10, skip=[TENANT]) == []
    assert len(book.due(made.id, _now(), 10, skip=[str(uuid.uuid4())])) == 3
