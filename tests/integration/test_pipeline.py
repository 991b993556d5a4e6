"""End to end: producer → Redis/Celery → real worker → simulator over HTTPS → ledger."""

from __future__ import annotations

import json
import uuid

import pytest
from celery import Celery
from sqlalchemy import text

from producer import Producer
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.constants import QUEUE, SEND_TASK
from threadcast.contract import DeliveryMessage

# What reaches Graph does not depend on the ledger's backend: one stack.
pytestmark = pytest.mark.backends("postgresql")

SEED_BODY = {"rootMessage": {"body": {"contentType": 1, "content": "<h1>Hello world</h1>"}}}
SEED_BYTES = b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'


def publish_raw(stack: Stack, messages: list[DeliveryMessage]) -> None:
    app = Celery(broker=stack.settings.redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    for m in messages:
        app.send_task(SEND_TASK, args=[m.to_wire()], queue=QUEUE)
    app.close()


def targets(stack: Stack, n: int) -> list[dict[str, str]]:
    group = str(uuid.uuid4())
    return [
        {"tenant": stack.tenants[i % 2], "group": group, "channel": f"19:c{i}x@thread.tacv2"}
        for i in range(n)
    ]


def settled(stack: Stack, broadcast_id: str, expected: int) -> bool:
    counts = stack.ledger.broadcasts.counts(broadcast_id)
    return counts["sent"] + counts["failed"] + counts["unknown"] == expected


def posts_for(stack: Stack, broadcast_content: str) -> list[dict[str, object]]:
    return [p for p in stack.sim.posts() if p["content"] == broadcast_content]


def test_seed_request_arrives_byte_for_byte(stack: Stack) -> None:
    channel = f"19:{uuid.uuid4().hex}@thread.tacv2"
    target = {"tenant": stack.tenants[0], "group": str(uuid.uuid4()), "channel": channel}
    with Producer(stack.settings) as producer:
        result = producer.send("<h1>Hello world</h1>", [target], content_type="html")
    wait_for(lambda: settled(stack, result.broadcast_id, 1), what="the delivery to settle")
    assert stack.ledger.broadcasts.counts(result.broadcast_id)["sent"] == 1
    [post] = [p for p in stack.sim.posts() if p["channel"] == channel]
    assert post["raw_body"].encode() == SEED_BYTES
    assert json.loads(post["raw_body"]) == SEED_BODY
    assert post["tenant"] == target["tenant"] and post["group"] == target["group"]
    assert post["content_type"] == 1
    with stack.ledger.engine.connect() as conn:
        attempt = conn.execute(
            text(
                "SELECT a.http_status, a.request_id, a.client_request_id, a.worker, a.latency_ms "
                "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b"
            ),
            {"b": result.broadcast_id},
        ).one()
    assert attempt.http_status == 204
    assert attempt.request_id == post["request_id"]
    assert attempt.client_request_id == post["client_request_id"]
    assert attempt.worker and attempt.latency_ms > 0
    assert post["retry_attempt"] is None


def test_broadcast_to_many_and_idempotent_resend(stack: Stack) -> None:
    content = f"<p>many {uuid.uuid4()}</p>"
    many = targets(stack, 40)
    with Producer(stack.settings) as producer:
        first = producer.send(content, many, content_type="html", broadcast_id=f"b-{uuid.uuid4()}")
        wait_for(lambda: settled(stack, first.broadcast_id, 40), what="40 deliveries")
        again = producer.send(content, many, content_type="html", broadcast_id=first.broadcast_id)
    assert first.created and first.published == 40
    assert not again.created and again.published == 0 and again.broadcast_id == first.broadcast_id
    assert stack.ledger.broadcasts.counts(first.broadcast_id)["sent"] == 40
    posts = posts_for(stack, content)
    assert len(posts) == 40
    assert len({(p["tenant"], p["channel"]) for p in posts}) == 40


def test_redelivered_message_for_a_sent_delivery_posts_nothing(stack: Stack) -> None:
    content = f"<p>once {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        result = producer.send(content, targets(stack, 3), content_type="html")
    wait_for(lambda: settled(stack, result.broadcast_id, 3), what="3 deliveries")
    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, tenant_id, group_id, channel_id FROM deliveries WHERE broadcast_id = :b"
            ),
            {"b": result.broadcast_id},
        ).all()
    messages = [
        DeliveryMessage(r.id, result.broadcast_id, r.tenant_id, r.group_id, r.channel_id)
        for r in rows
    ]
    # Straight onto the Celery queue, as a redelivered or duplicated message would arrive.
    publish_raw(stack, messages * 3)
    wait_for(lambda: stack.redis.llen("threadcast.deliveries") == 0, what="the queue to drain")
    wait_for(
        lambda: stack.worker.log_text().count("not claimed: it is sent") >= 9,
        what="the worker to refuse all nine",
    )
    assert len(posts_for(stack, content)) == 3
    with stack.ledger.engine.connect() as conn:
        attempts = conn.execute(
            text(
                "SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b"
            ),
            {"b": result.broadcast_id},
        ).scalar()
    assert attempts == 3
