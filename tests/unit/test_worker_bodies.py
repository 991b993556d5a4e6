"""The worker's request body per delivery (worker/deliver.py): a plain message's body, a
personal one's text filled in and HTML-escaped, a message with parts as v1.0's chatMessage
naming the delivery's own channel, and what is never posted (parts bound for chatthreads,
variables that do not fill the text). The stack's end-to-end test: tests/integration/
test_rich_delivery.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from threadcast.contract import ContentType
from threadcast.endpoints import AUTO, CHANNEL_MESSAGES, CHATTHREADS
from threadcast.ledger import Claim, StoredMessage
from threadcast.message import Importance, Mention, MessageParts
from worker.deliver import PARTS_NEED_V1, UNFILLED, _request, _Unfit
from worker.endpoint import EndpointChooser
from worker.graph import ENDPOINTS

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TEAM = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
CHANNEL = "19:abc@thread.tacv2"


def claim(variables: dict[str, str] | None = None) -> Claim:
    return Claim(
        "d", "b", "t", TEAM, CHANNEL, 1, None, 0, AT, 1, "crid", AT, CHANNEL_MESSAGES, variables
    )


def body(made: object) -> Any:
    assert isinstance(made, tuple)
    return json.loads(made[0])


def test_a_plain_message_is_the_endpoints_own_body() -> None:
    stored = StoredMessage("<p>hi</p>", ContentType.HTML, None)
    assert body(_request(stored, claim(), ENDPOINTS[CHATTHREADS])) == {
        "rootMessage": {"body": {"contentType": 1, "content": "<p>hi</p>"}}
    }


def test_personal_text_is_filled_in_and_escaped_into_html_only() -> None:
    html = StoredMessage("<p>Hi {{ team_name }}</p>", ContentType.HTML, None, personal=True)
    made = _request(html, claim({"team_name": "<b>&"}), ENDPOINTS[CHANNEL_MESSAGES])
    assert body(made)["body"]["content"] == "<p>Hi &lt;b&gt;&amp;</p>"
    text = StoredMessage("Hi {{ team_name }}", ContentType.TEXT, None, personal=True)
    made = _request(text, claim({"team_name": "<b>&"}), ENDPOINTS[CHANNEL_MESSAGES])
    assert body(made)["body"]["content"] == "Hi <b>&"


def test_parts_become_the_chat_message_of_the_deliverys_own_channel() -> None:
    parts = MessageParts(
        subject="For {{ team_name }}",
        importance=Importance.HIGH,
        mentions=(Mention.parse("m", {"id": 0, "text": "here", "kind": "channel"}),),
    )
    stored = StoredMessage(
        '<at id="0">here</at> {{ team_name }}', ContentType.HTML, AT, parts, personal=True
    )
    made = _request(stored, claim({"team_name": "R&D"}), ENDPOINTS[CHANNEL_MESSAGES])
    assert isinstance(made, tuple) and made[1] == AT
    sent = body(made)
    assert sent["subject"] == "For R&D" and sent["importance"] == "high"
    assert sent["body"]["content"] == '<at id="0">here</at> R&amp;D'
    assert sent["mentions"][0]["mentioned"]["conversation"]["id"] == CHANNEL


def test_what_is_never_posted() -> None:
    parts = MessageParts(subject="s")
    to_chatthreads = _request(
        StoredMessage("x", ContentType.TEXT, None, parts), claim(), ENDPOINTS[CHATTHREADS]
    )
    assert isinstance(to_chatthreads, _Unfit) and to_chatthreads.code == PARTS_NEED_V1
    missing = _request(
        StoredMessage("Hi {{ name }}", ContentType.TEXT, None, personal=True),
        claim({"other": "x"}),
        ENDPOINTS[CHANNEL_MESSAGES],
    )
    assert isinstance(missing, _Unfit) and missing.code == UNFILLED
    assert "name" in missing.reason


@pytest.mark.parametrize(
    ("setting", "goes_by"),
    [(AUTO, CHANNEL_MESSAGES), (CHANNEL_MESSAGES, CHANNEL_MESSAGES), (CHATTHREADS, None)],
)
def test_parts_go_by_v1_unless_chatthreads_is_pinned(setting: str, goes_by: str | None) -> None:
    chooser = EndpointChooser(setting, None, "w")  # type: ignore[arg-type]  # never read here
    found = chooser.for_parts()
    assert (found.name if found else None) == goes_by
