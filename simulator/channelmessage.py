"""The v1.0 ``POST /teams/{team-id}/channels/{channel-id}/messages`` endpoint's body and answer.

Its body is ``{"body": {"contentType": "text"|"html", "content": "..."}}``: here contentType
is a STRING, unlike the beta chatthreads endpoint's integer, exactly the kind of difference a
client mixing the two gets wrong. Validation is as strict as for chatthreads. The answer is
``201 Created`` with the new chatMessage.
"""

from __future__ import annotations

import json

from simulator.clock import Clock, graph_instant
from simulator.payload import (
    ChatMessageBody,
    bad_request,
    exact_object,
    load_json,
    message_content,
    require_json_media_type,
)
from simulator.posts import PostAttempt
from simulator.tenants import user_for

BODY_TYPES = {"text": 0, "html": 1}
_BODY_TYPE_NAMES = {number: name for name, number in BODY_TYPES.items()}


def parse_channel_message(content_type_header: str | None, body: bytes) -> ChatMessageBody:
    require_json_media_type(content_type_header)
    message = exact_object(load_json(body), "", "microsoft.graph.chatMessage", {"body"})
    item = exact_object(
        message["body"], "body", "microsoft.graph.itemBody", ("contentType", "content")
    )
    return ChatMessageBody(
        _body_type(item["contentType"]), message_content(item["content"], "body.content")
    )


def _body_type(value: object) -> int:
    if isinstance(value, str) and value in BODY_TYPES:
        return BODY_TYPES[value]
    raise bad_request(
        f"Cannot convert the literal {json.dumps(value)} to the expected type "
        '\'microsoft.graph.bodyType\': body.contentType must be the string "text" or "html".'
    )


class MessageIds:
    """Channel message ids as Teams makes them: epoch milliseconds, here made unique."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        self._last = max(self._last + 1, int(self._clock() * 1000))
        return str(self._last)


def created_message(attempt: PostAttempt, graph_url: str) -> dict[str, object]:
    """The chatMessage the endpoint answers with (the fields a client may read)."""
    team, channel = attempt.group_id, attempt.channel_id
    created = graph_instant(attempt.received_at)
    user = user_for(attempt.tenant_id)
    return {
        "@odata.context": (
            f"{graph_url}/v1.0/$metadata#teams('{team}')/channels('{channel}')/messages/$entity"
        ),
        "id": attempt.message_id,
        "replyToId": None,
        "etag": attempt.message_id,
        "messageType": "message",
        "createdDateTime": created,
        "lastModifiedDateTime": created,
        "lastEditedDateTime": None,
        "deletedDateTime": None,
        "subject": None,
        "summary": None,
        "chatId": None,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": None,
        "from": {
            "application": None,
            "device": None,
            "user": {
                "id": user.oid,
                "displayName": user.name,
                "userIdentityType": "aadUser",
                "tenantId": attempt.tenant_id,
            },
        },
        "body": {
            "contentType": _BODY_TYPE_NAMES[attempt.content_type],
            "content": attempt.content,
        },
        "channelIdentity": {"teamId": team, "channelId": channel},
        "attachments": [],
        "mentions": [],
        "reactions": [],
    }
