"""Issue 14, round two: a cancel holds, and a re-send costs no second permit -- the real
worker, Redis and simulator.

- Cancel: a delivery claimed before ``cancel`` and answered with a retryable error used to
  be claimed and posted again after it; now no post starts after ``cancel`` returned, and
  the in-flight answers other than ``sent`` are recorded ``cancelled``.
- One entry per delivery: an idempotent re-send re-published every still-queued delivery,
  each copy released with a permit and counted against its channel's day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from producer import Producer
from tests.integration import books
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.dispatch import keys
from threadcast.ledger import Claim, DeliveryState, Outcome
from threadcast.ledger.schema import attempts, deliveries

# One stack, where claims and the cancel truly race (the suite under 10 minutes:
# test_ledger.py covers the SQL on both).
pytestmark = pytest.mark.backends("postgresql")

STACK_ENV = {"THREADCAST_TEAM_RPS": "2"}


@pytest.fixture
def slow_503s(stack: Stack) -> Iterator[None]:
    stack.sim.configure(latency_ms=1500, fault_503_bare=1.0)
    yield
    stack.sim.configure(latency_ms=0, fault_503_bare=0.0)


def targets(stack: Stack, n: int, team: str | None = None) -> list[dict[str, str]]:
    return [
        {
            "tenant": stack.tenants[0],
            "group": team or str(uuid.uuid4()),
            "channel": f"19:{uuid.uuid4().hex}@thread.tacv2",
        }
        for _ in range(n)
    ]


def attempts_of(stack: Stack, broadcast_id: str) -> list[tuple[datetime, str, int]]:
    query = (
        select(attempts.c.started_at, attempts.c.outcome, attempts.c.http_status)
        .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
        .where(deliveries.c.broadcast_id == broadcast_id)
    )
    with stack.ledger.engine.connect() as conn:
        return [(r.started_at, r.outcome, r.http_status) for r in conn.execute(query).all()]


def test_posts_in_flight_at_cancel_are_not_posted_again(stack: Stack, slow_503s: None) -> None:
    content = f"<p>cancel me {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        bid = producer.send(content, targets(stack, 3), content_type="html").broadcast_id
        wait_for(
            lambda: producer.ledger.broadcasts.counts(bid)["sending"] >= 1, what="a post in flight"
        )
        producer.cancel(bid)
        cancelled_at = datetime.now(UTC)
        # Graph answers well again: before the fix the in-flight ones were retried and sent.
        stack.sim.configure(latency_ms=0, fault_503_bare=0.0)
        wait_for(
            lambda: producer.ledger.broadcasts.counts(bid)["cancelled"] == 3,
            what="every delivery cancelled",
        )
    counts = stack.ledger.broadcasts.counts(bid)
    assert counts["cancelled"] == 3 and counts["sent"] == 0
    attempts = attempts_of(stack, bid)
    assert attempts, "a post was in flight at the cancel"
    # No attempt began after cancel returned; each in-flight one kept what Graph answered.
    assert all(started <= cancelled_at for started, _, _ in attempts)
    assert {(outcome, status) for _, outcome, status in attempts} == {("retrying", 503)}
    assert [p for p in stack.sim.posts() if p["content"] == content] == []
    assert stack.redis.zscore(keys.CANCELLED, bid) is not None


def test_a_claim_made_before_the_cancel_gets_no_permit_and_a_retry_lifts_the_cancel(
    stack: Stack,
) -> None:
    content = f"<p>claimed {uuid.uuid4()}</p>"
    now = datetime.now(UTC)
    with Producer(stack.settings) as producer:
        bid = producer.send(
            content, targets(stack, 1), content_type="html", send_at=now + timedelta(days=1)
        ).broadcast_id
        with stack.ledger.engine.begin() as conn:  # as if released, then claimed by a worker
            conn.execute(
                text("UPDATE deliveries SET state = 'queued' WHERE broadcast_id = :b"), {"b": bid}
            )
        [delivery] = [m.delivery_id for m in stack.ledger.broadcasts.queued_messages(bid)]
        claim = books.claim(stack.ledger, delivery, "w", "crid", timedelta(minutes=1), now)
        assert isinstance(claim, Claim)
        assert producer.cancel(bid) == 0  # nothing waiting: the one delivery is claimed
        # Once cancelled, nothing of it is claimed again.
        assert not isinstance(
            books.claim(stack.ledger, delivery, "w", "c2", timedelta(minutes=1), now), Claim
        )
        # Its POST is answered 503 (it was on the wire): recorded cancelled, not retrying.
        retry = Outcome(DeliveryState.RETRYING, http_status=503, next_attempt_at=now)
        assert stack.ledger.deliveries.record_many([(claim, retry, now)]) == [
            DeliveryState.CANCELLED
        ]
        # An operator retry of the cancelled ones lifts the cancel, in the ledger and Redis.
        assert producer.retry(bid, ["cancelled"]) == 1
        assert stack.redis.zscore(keys.CANCELLED, bid) is None
        wait_for(lambda: producer.ledger.broadcasts.counts(bid)["sent"] == 1, what="sent")
    assert len([p for p in stack.sim.posts() if p["content"] == content]) == 1


def test_an_idempotent_resend_costs_no_second_permit(stack: Stack) -> None:
    """Before the fix: each re-send put every still-queued delivery in again; each copy was
    released (a permit and a day's count each) and refused by the claim."""
    content = f"<p>once {uuid.uuid4()}</p>"
    team = str(uuid.uuid4())
    work = targets(stack, 5, team)  # one team at 2/s: the re-sends find them queued
    with Producer(stack.settings) as producer:
        bid = f"b-{uuid.uuid4()}"
        for _ in range(6):
            producer.send(content, work, content_type="html", broadcast_id=bid)
        wait_for(lambda: producer.ledger.broadcasts.counts(bid)["sent"] == 5, what="5 sent")
    # The channels' day counts (before the fix counted at each release): one post each.
    seconds, _ = stack.redis.time()
    day = stack.redis.hgetall(keys.channel_day(datetime.fromtimestamp(seconds, UTC)))
    mine = {k.decode(): int(v) for k, v in day.items() if team in k.decode()}
    assert mine == {f"{stack.tenants[0]}:{team}:{t['channel']}": 1 for t in work}
    log = stack.worker.log_text()
    with stack.ledger.engine.connect() as conn:
        ids = (
            conn.execute(text("SELECT id FROM deliveries WHERE broadcast_id = :b"), {"b": bid})
            .scalars()
            .all()
        )
    assert not [i for i in ids if f"delivery {i} not claimed" in log]
    assert len([p for p in stack.sim.posts() if p["content"] == content]) == 5
