"""End to end, message parts and personal text: lifecycle → gate → real worker → simulator over
HTTPS (Graph v1.0's chatMessage parts) → ledger.

A message with parts beyond its body goes by v1.0 channel messages even when the deployment is
on ``auto`` and has not switched (the seed's chatthreads request carries a body only), and its
attempts say so; a personal broadcast's content is filled in per delivery, HTML-escaped; content
and parts are stored once per broadcast. Under a THREADCAST_ENDPOINT pinned to chatthreads a
message with parts is never posted: its deliveries fail, saying why.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text

from producer import status
from producer.processes import start_worker
from simulator.process import RunningSimulator
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.endpoints import CHANNEL_MESSAGES, CHATTHREADS, recorded
from threadcast.lifecycle import Intake, Publisher
from threadcast.message import CARD_TYPE, Card, Image, Importance, Mention, MessageParts
from worker.deliver import PARTS_NEED_V1

# One stack: storing parts on each backend is test_ledger_parts.py's.
pytestmark = pytest.mark.backends("sqlite")

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(48))
CARD = {
    "type": "AdaptiveCard",
    "version": "1.4",
    "body": [
        {"type": "TextBlock", "text": "Closed Friday"},
        {"type": "Image", "url": "image:logo"},
    ],
}
RICH = '<p>Read this, <at id="0">General</at></p><attachment id="card1"></attachment>'


def rich_parts() -> MessageParts:
    return MessageParts(
        subject="Road works",
        importance=Importance.URGENT,
        cards=(Card.parse("cards[0]", "card1", CARD),),
        images=(Image.parse("images[0]", "logo", PNG),),
        mentions=(Mention.parse("mentions[0]", {"id": 0, "text": "General", "kind": "channel"}),),
    )


@pytest.fixture(scope="module")
def admin(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.admin_url, verify=sim.ssl_context(), timeout=30) as http:
        yield http


def accept(stack: Stack, broadcast: Broadcast) -> None:
    """Through the lifecycle, as the producer, the API and the scheduler hand a broadcast on."""
    publisher = Publisher(stack.settings.redis_url)
    try:
        Intake(stack.ledger, publisher).accept(broadcast, broadcast.targets, datetime.now(UTC))
    finally:
        publisher.close()


def channels(stack: Stack, team: str, n: int, **variables: list[str]) -> tuple[Target, ...]:
    return tuple(
        Target(
            stack.tenants[i % 2],
            team,
            f"19:{uuid.uuid4().hex}@thread.tacv2",
            {name: values[i] for name, values in variables.items()} or None,
        )
        for i in range(n)
    )


def settle(stack: Stack, broadcast: Broadcast, state: str = "sent") -> None:
    n = len(broadcast.targets)
    wait_for(
        lambda: stack.ledger.broadcasts.counts(broadcast.id)[state] == n,
        what=f"{n} deliveries {state}",
    )


def messages_of(admin: httpx.Client, team: str) -> list[dict[str, Any]]:
    """The simulator's v1.0 messages posted in ``team`` (every version of each)."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = admin.get("/messages", params={"offset": offset, "limit": 1000})
        batch = page.raise_for_status().json()["messages"]
        if not batch:
            return [m for m in found if m["team"] == team]
        found += batch
        offset += len(batch)


def attempts(stack: Stack, broadcast_id: str) -> list[dict[str, Any]]:
    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.channel_id, d.message_id AS kept, a.endpoint, a.http_status, "
                "a.outcome, a.message_id, a.error_code, a.error_message "
                "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b ORDER BY a.id"
            ),
            {"b": broadcast_id},
        ).all()
    return [dict(r._mapping) for r in rows]


def test_a_card_an_image_a_subject_and_a_mention_arrive_as_graph_v1_expects(
    stack: Stack, admin: httpx.Client
) -> None:
    team = str(uuid.uuid4())
    broadcast = Broadcast(
        f"rich-{uuid.uuid4()}", RICH, ContentType.HTML, channels(stack, team, 3), parts=rich_parts()
    )
    accept(stack, broadcast)
    settle(stack, broadcast)

    found = {m["channel"]: m for m in messages_of(admin, team)}
    assert sorted(found) == sorted(t.channel for t in broadcast.targets)  # one per channel
    for target in broadcast.targets:
        message = found[target.channel]
        assert message["tenant"] == target.tenant and message["history"] == "created"
        [version] = message["versions"]
        assert version["subject"] == "Road works" and version["importance"] == "urgent"
        assert version["body"]["contentType"] == "html"
        assert '<at id="0">General</at>' in version["body"]["content"]
        assert '<attachment id="card1"></attachment>' in version["body"]["content"]
        [attachment] = version["attachments"]
        assert (attachment["id"], attachment["contentType"]) == ("card1", CARD_TYPE)
        card = json.loads(attachment["content"])
        assert card["body"][1]["url"] == "../hostedContents/1/$value"
        assert version["hostedContents"] == [
            {"temporaryId": "1", "contentType": "image/png", "bytes": len(PNG)}
        ]
        [mention] = version["mentions"]
        assert (mention["id"], mention["mentionText"]) == (0, "General")
        conversation = mention["mentioned"]["conversation"]
        assert conversation["id"] == target.channel  # the delivery's own channel
        assert conversation["conversationIdentityType"] == "channel"

    # Recorded sent by v1.0, though the deployment is on auto and has not switched.
    assert recorded(stack.ledger.deployment) is None
    posts = [p for p in stack.sim.posts() if p["group"] == team]
    assert len(posts) == 3 and {p["endpoint"] for p in posts} == {CHANNEL_MESSAGES}
    tried = attempts(stack, broadcast.id)
    assert [(a["endpoint"], a["http_status"], a["outcome"]) for a in tried] == [
        (CHANNEL_MESSAGES, 201, "sent")
    ] * 3
    assert {a["channel_id"]: a["kept"] for a in tried} == {
        c: m["message_id"] for c, m in found.items()
    }

    shown = status.report(stack.ledger, broadcast.id)
    assert shown.message.parts == "a subject, importance urgent, 1 card, 1 image, 1 mention"
    assert shown.message.goes_by == CHANNEL_MESSAGES and not shown.message.personal
    assert shown.endpoint.attempts == {CHANNEL_MESSAGES: {"sent": 3}}
    assert shown.endpoint.active == CHATTHREADS  # the deployment's own endpoint: unchanged
    assert "by v1.0 channel messages (the message has parts beyond its body)" in status.render(
        shown
    )
    assert status.as_json(shown)["message"]["goes_by"] == CHANNEL_MESSAGES


def test_a_personal_broadcast_fills_in_each_channels_own_text_html_escaped(
    stack: Stack,
) -> None:
    team = str(uuid.uuid4())
    names = ["Eng", "<b>&", "Sales"]
    targets = channels(stack, team, 3, team_name=names)
    broadcast = Broadcast(
        f"mine-{uuid.uuid4()}",
        "<p>Hi {{ team_name }}</p>",
        ContentType.HTML,
        targets,
        personal=True,
    )
    accept(stack, broadcast)
    settle(stack, broadcast)

    posts = {p["channel"]: p for p in stack.sim.posts() if p["group"] == team}
    assert {c: p["content"] for c, p in posts.items()} == {
        targets[0].channel: "<p>Hi Eng</p>",
        targets[1].channel: "<p>Hi &lt;b&gt;&amp;</p>",
        targets[2].channel: "<p>Hi Sales</p>",
    }
    # Without parts it goes by the deployment's endpoint: here the seed's request, its
    # integer contentType and the body only.
    raw = json.loads(posts[targets[1].channel]["raw_body"])
    assert raw == {
        "rootMessage": {"body": {"contentType": 1, "content": "<p>Hi &lt;b&gt;&amp;</p>"}}
    }
    assert {a["endpoint"] for a in attempts(stack, broadcast.id)} == {CHATTHREADS}
    shown = status.report(stack.ledger, broadcast.id)
    assert shown.message.personal and shown.message.goes_by is None
    assert "personal text filled in per delivery" in status.render(shown)


def test_personal_text_with_parts_fills_the_subject_too_and_mentions_each_team(
    stack: Stack, admin: httpx.Client
) -> None:
    team = str(uuid.uuid4())
    targets = channels(stack, team, 2, team_name=["Eng", "R&D"])
    parts = MessageParts(
        subject="News for {{ team_name }}",
        mentions=(Mention.parse("mentions[0]", {"id": 0, "text": "Team", "kind": "team"}),),
    )
    broadcast = Broadcast(
        f"mine-rich-{uuid.uuid4()}",
        '<p>Hi {{ team_name }}, <at id="0">Team</at></p>',
        ContentType.HTML,
        targets,
        parts=parts,
        personal=True,
    )
    accept(stack, broadcast)
    settle(stack, broadcast)

    found = {m["channel"]: m["versions"][0] for m in messages_of(admin, team)}
    assert {c: (v["subject"], v["body"]["content"]) for c, v in found.items()} == {
        targets[0].channel: ("News for Eng", '<p>Hi Eng, <at id="0">Team</at></p>'),
        targets[1].channel: ("News for R&D", '<p>Hi R&amp;D, <at id="0">Team</at></p>'),
    }
    for version in found.values():
        conversation = version["mentions"][0]["mentioned"]["conversation"]
        assert (conversation["id"], conversation["conversationIdentityType"]) == (team, "team")
    assert {a["endpoint"] for a in attempts(stack, broadcast.id)} == {CHANNEL_MESSAGES}


def test_content_and_parts_are_stored_once_per_broadcast(stack: Stack) -> None:
    team = str(uuid.uuid4())
    rich = Broadcast(
        f"once-{uuid.uuid4()}", RICH, ContentType.HTML, channels(stack, team, 4), parts=rich_parts()
    )
    targets = channels(stack, team, 3, team_name=["a", "b", "c"])
    mine = Broadcast(
        f"once-mine-{uuid.uuid4()}", "Hi {{ team_name }}", ContentType.TEXT, targets, personal=True
    )
    for broadcast in (rich, mine):
        accept(stack, broadcast)
        settle(stack, broadcast)

    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, content, parts, personal FROM broadcasts WHERE id IN (:r, :m)"),
            {"r": rich.id, "m": mine.id},
        ).all()
        kept = conn.execute(
            text("SELECT broadcast_id, variables FROM deliveries WHERE broadcast_id IN (:r, :m)"),
            {"r": rich.id, "m": mine.id},
        ).all()
    stored = {r.id: (r.content, r.parts, bool(r.personal)) for r in rows}
    assert stored == {
        rich.id: (RICH, rich_parts().to_json(), False),
        mine.id: ("Hi {{ team_name }}", None, True),
    }
    # The image is in the one broadcasts row, as base64, once.
    image = base64.b64encode(PNG).decode()
    assert str(stored[rich.id][1]).count(image) == 1
    # Deliveries hold no content and no parts: only a personal broadcast's variables.
    assert [v for b, v in kept if b == rich.id] == [None] * 4
    assert sorted(json.loads(v)["team_name"] for b, v in kept if b == mine.id) == ["a", "b", "c"]
    columns = {c["name"] for c in inspect(stack.ledger.engine).get_columns("deliveries")}
    assert not columns & {"content", "content_type", "parts", "personal"}


def test_a_deployment_pinned_to_chatthreads_never_posts_parts(
    stack: Stack, admin: httpx.Client
) -> None:
    """A ledger written before the pin changed (the producer refuses such a send now): the
    worker fails each delivery without a POST, saying why. Last in this module: it stops the
    stack's worker for one of its own (as test_endpoint_switch.py's restart does)."""
    stack.worker.stop()
    pinned = start_worker(
        stack.workdir / "worker-pinned.log", env=stack.env | {"THREADCAST_ENDPOINT": CHATTHREADS}
    )
    team = str(uuid.uuid4())
    try:
        broadcast = Broadcast(
            f"pinned-{uuid.uuid4()}",
            RICH,
            ContentType.HTML,
            channels(stack, team, 2),
            parts=rich_parts(),
        )
        accept(stack, broadcast)
        settle(stack, broadcast, "failed")
    finally:
        pinned.stop()

    assert messages_of(admin, team) == []
    assert [p for p in stack.sim.posts() if p["group"] == team] == []  # no request at all
    tried = attempts(stack, broadcast.id)
    assert [(a["endpoint"], a["http_status"], a["outcome"], a["error_code"]) for a in tried] == [
        (CHATTHREADS, None, "failed", PARTS_NEED_V1)
    ] * 2
    assert all("THREADCAST_ENDPOINT pins chatthreads" in a["error_message"] for a in tried)
    errors = stack.ledger.broadcasts.recent_errors(broadcast.id)
    assert len(errors) == 2 and all(e.error_code == PARTS_NEED_V1 for e in errors)
