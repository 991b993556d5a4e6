"""THREADCAST_ENDPOINT=channel-messages: v1.0 channel messages, end to end."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from producer import Producer
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for

STACK_ENV = {"THREADCAST_ENDPOINT": "channel-messages"}


def test_channel_messages_endpoint_posts_and_records_the_message_id(stack: Stack) -> None:
    content = f"<b>v1.0 {uuid.uuid4()}</b>"
    targets = [
        {
            "tenant": stack.tenants[i % 2],
            "group": str(uuid.uuid4()),
            "channel": f"19:v1x{i}@thread.tacv2",
        }
        for i in range(4)
    ]
    with Producer(stack.settings) as producer:
        result = producer.send(content, targets, content_type="html")
    wait_for(lambda: stack.ledger.broadcasts.counts(result.broadcast_id)["sent"] == 4)
    posts = {p["channel"]: p for p in stack.sim.posts() if p["content"] == content}
    assert len(posts) == 4
    for post in posts.values():
        assert post["endpoint"] == "channel-messages"
        assert json.loads(post["raw_body"]) == {"body": {"contentType": "html", "content": content}}
    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.channel_id, d.message_id, a.message_id, a.http_status "
                "FROM deliveries d JOIN attempts a ON a.delivery_id = d.id "
                "WHERE d.broadcast_id = :b"
            ),
            {"b": result.broadcast_id},
        ).all()
    assert len(rows) == 4
    for channel, delivery_message, attempt_message, status in rows:
        assert status == 201
        assert delivery_message == attempt_message == posts[channel]["message_id"] is not None
