"""The v1.0 channel-messages body (STRING contentType) and its 201 answer."""

from __future__ import annotations

import pytest

from simulator.channelmessage import MessageIds, created_message, parse_channel_message
from simulator.errors import GraphError
from simulator.payload import ChatMessageBody
from simulator.posts import CHANNEL_MESSAGES, PostAttempt

TEAM = "6f1b7c2e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"


def test_text_and_html_are_accepted() -> None:
    html = b'{"body":{"contentType":"html","content":"<b>hi</b>"}}'
    assert parse_channel_message("application/json", html) == ChatMessageBody(1, "<b>hi</b>")
    text = b'{"body":{"content":"hi","contentType":"text"}}'
    assert parse_channel_message("application/json; charset=utf-8", text) == ChatMessageBody(
        0, "hi"
    )


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"body":{"contentType":1,"content":"x"}}', "body.contentType"),
        (b'{"body":{"contentType":"HTML","content":"x"}}', '"HTML"'),
        (b'{"body":{"contentType":"markdown","content":"x"}}', '"markdown"'),
        (b'{"body":{"contentType":"text","content":""}}', "must not be empty"),
        (b'{"body":{"contentType":"text","content":"  "}}', "must not be empty"),
        (b'{"body":{"contentType":"text","content":7}}', "must be a string"),
        (b'{"body":{"content":"x"}}', "'body.contentType' is missing"),
        (b'{"body":{"contentType":"text","content":"x","x":1}}', "'x' does not exist"),
        (b'{"body":{"contentType":"text","content":"x"},"subject":"s"}', "'subject'"),
        (b'{"rootMessage":{"body":{"contentType":1,"content":"x"}}}', "'rootMessage'"),
        (b'{"body":"x"}', "'body' must be a JSON object"),
        (b"", "Empty Payload"),
    ],
)
def test_anything_else_is_400(body: bytes, names: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_channel_message("application/json", body)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest")
    assert names in caught.value.message


def test_message_ids_are_epoch_milliseconds_and_unique() -> None:
    ids = MessageIds(lambda: 1_700_000_000.0)
    assert [ids.next() for _ in range(3)] == ["1700000000000", "1700000000001", "1700000000002"]


def test_the_created_message() -> None:
    attempt = PostAttempt(
        tenant_id="0b7d3f2a-5c1e-4a8b-9d6f-1e2a3b4c5d6e",
        client_id="c",
        group_id=TEAM,
        channel_id="19:a@thread.tacv2",
        content_type=1,
        content="<b>hi</b>",
        raw_body=b"{}",
        request_id="r",
        client_request_id=None,
        retry_attempt=None,
        received_at=1_700_000_000.25,
        endpoint=CHANNEL_MESSAGES,
        message_id="1700000000250",
    )
    message = created_message(attempt, "https://127.0.0.1:1")
    assert message["id"] == "1700000000250"
    assert message["createdDateTime"] == "2023-11-14T22:13:20.250Z"
    assert message["body"] == {"contentType": "html", "content": "<b>hi</b>"}
    assert message["channelIdentity"] == {"teamId": TEAM, "channelId": "19:a@thread.tacv2"}
    assert str(message["@odata.context"]).startswith("https://127.0.0.1:1/v1.0/$metadata#teams(")
