"""The v1.0 ``POST /teams/{team-id}/channels/{channel-id}/messages`` endpoint's body and answer.

Its body is ``{"body": {"contentType": "text"|"html", "content": "..."}}``: here contentType
is a STRING, unlike the beta chatthreads endpoint's integer, exactly the kind of difference a
client mixing the two gets wrong. Validation is as strict as for chatthreads. The answer is
``201 Created`` with the new chatMessage.

With ``message_parts`` on (:mod:`simulator.v1knobs`), the body may also carry the subject,
importance, attachments, hostedContents and mentions (:mod:`simulator.messageparts`), and a
``PATCH`` of the message may change any of them; the answer echoes them as Graph does (the
images' ``../hostedContents/T/$value`` references become their hosted content URLs).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from simulator.clock import Clock, graph_instant
from simulator.messageparts import (
    MessageParts,
    Where,
    check_message,
    hosted_content_urls,
    object_with,
    parse_attachments,
    parse_hosted_contents,
    parse_importance,
    parse_mentions,
    parse_subject,
    with_hosted_urls,
)
from simulator.payload import (
    ChatMessageBody,
    bad_request,
    exact_object,
    load_json,
    message_content,
    require_json_media_type,
)
from simulator.posts import PostAttempt
from simulator.tenants import SimUser, user_for

BODY_TYPES = {"text": 0, "html": 1}
_BODY_TYPE_NAMES = {number: name for name, number in BODY_TYPES.items()}
MESSAGE_PROPERTIES = ("body", "subject", "importance", "attachments", "hostedContents", "mentions")
"""What a client may write on a chatMessage here (with ``message_parts`` on)."""
_CHAT_MESSAGE = "microsoft.graph.chatMessage"


def parse_channel_message(content_type_header: str | None, body: bytes) -> ChatMessageBody:
    require_json_media_type(content_type_header)
    message = exact_object(load_json(body), "", _CHAT_MESSAGE, {"body"})
    return _item_body(message["body"])


def _item_body(value: object) -> ChatMessageBody:
    item = exact_object(value, "body", "microsoft.graph.itemBody", ("contentType", "content"))
    return ChatMessageBody(
        _body_type(item["contentType"]), message_content(item["content"], "body.content")
    )


def parse_message_parts(content_type_header: str | None, body: bytes, where: Where) -> MessageParts:
    """A new message with every part Graph v1.0 takes, checked whole (``message_parts`` on)."""
    require_json_media_type(content_type_header)
    message = object_with(load_json(body), "", _CHAT_MESSAGE, MESSAGE_PROPERTIES, ("body",))
    item = _item_body(message["body"])
    parts = _changed(MessageParts(item.content_type, item.content), message, where)
    check_message(parts)
    return parts


def parse_message_update(
    content_type_header: str | None,
    body: bytes,
    current: MessageParts,
    where: Where,
    *,
    all_parts: bool,
) -> MessageParts:
    """``current`` with the properties a PATCH names changed (the body only unless
    ``all_parts``); the message that results is checked whole."""
    require_json_media_type(content_type_header)
    known = MESSAGE_PROPERTIES if all_parts else ("body",)
    message = object_with(load_json(body), "", _CHAT_MESSAGE, known, ())
    if not message:
        raise bad_request(
            f"Nothing to update: name at least one of the properties {', '.join(known)}."
        )
    updated = _changed(current, message, where)
    if all_parts:
        check_message(updated)
    return updated


def _changed(parts: MessageParts, message: dict[str, object], where: Where) -> MessageParts:
    changes: dict[str, Any] = {}
    if "body" in message:
        item = _item_body(message["body"])
        changes.update(content_type=item.content_type, content=item.content)
    if "subject" in message:
        changes["subject"] = parse_subject(message["subject"])
    if "importance" in message:
        changes["importance"] = parse_importance(message["importance"])
    if "attachments" in message:
        changes["attachments"] = parse_attachments(message["attachments"])
    if "hostedContents" in message:
        changes["hosted_contents"] = parse_hosted_contents(message["hostedContents"])
    if "mentions" in message:
        changes["mentions"] = parse_mentions(message["mentions"], where)
    return dataclasses.replace(parts, **changes)


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


def message_url(graph_url: str, team_id: str, channel_id: str, message_id: str) -> str:
    return f"{graph_url}/v1.0/teams/{team_id}/channels/{channel_id}/messages/{message_id}"


def created_message(
    attempt: PostAttempt, graph_url: str, parts: MessageParts | None = None
) -> dict[str, object]:
    """The chatMessage the endpoint answers with (the fields a client may read)."""
    team, channel = attempt.group_id, attempt.channel_id
    created = graph_instant(attempt.received_at)
    user = user_for(attempt.tenant_id)
    answer = _created(attempt, graph_url, team, channel, created, user)
    if parts is None:
        return answer
    url = message_url(graph_url, team, channel, str(attempt.message_id))
    urls = hosted_content_urls(parts, url)
    answer["body"] = {
        "contentType": _BODY_TYPE_NAMES[parts.content_type],
        "content": with_hosted_urls(parts.content, urls),
    }
    answer.update(
        subject=parts.subject,
        importance=parts.importance,
        attachments=[
            {**attachment, "content": with_hosted_urls(str(attachment["content"]), urls)}
            if isinstance(attachment["content"], str)
            else attachment
            for attachment in parts.attachments
        ],
        mentions=list(parts.mentions),
    )
    return answer


def _created(
    attempt: PostAttempt, graph_url: str, team: str, channel: str, created: str, user: SimUser
) -> dict[str, object]:
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
