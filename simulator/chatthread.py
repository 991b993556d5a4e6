"""Strict validation of a ``chatthreads`` request body, exactly as the beta endpoint documents it:
``{"rootMessage": {"body": {"contentType": 0|1, "content": "..."}}}`` with an INTEGER
contentType. Anything else is answered 400, naming the problem, so client bugs surface here
rather than in a tenant's channel."""

from __future__ import annotations

import json

from simulator.payload import (
    ChatMessageBody,
    bad_request,
    exact_object,
    load_json,
    message_content,
    require_json_media_type,
)

__all__ = ["CONTENT_TYPES", "ChatMessageBody", "parse_chat_thread"]

CONTENT_TYPES = {0: "text", 1: "html"}


def parse_chat_thread(content_type_header: str | None, body: bytes) -> ChatMessageBody:
    require_json_media_type(content_type_header)
    thread = exact_object(load_json(body), "", "microsoft.graph.chatThread", {"rootMessage"})
    root_message = exact_object(
        thread["rootMessage"], "rootMessage", "microsoft.graph.chatMessage", {"body"}
    )
    message = exact_object(
        root_message["body"],
        "rootMessage.body",
        "microsoft.graph.itemBody",
        ("contentType", "content"),
    )
    return ChatMessageBody(
        _content_type(message["contentType"]),
        message_content(message["content"], "rootMessage.body.content"),
    )


def _content_type(value: object) -> int:
    # bool is an int in Python but `true` is not an integer on the wire.
    if type(value) is int and value in CONTENT_TYPES:
        return value
    literal = f"'{value}'" if isinstance(value, str) else json.dumps(value)
    raise bad_request(
        f"Cannot convert the literal {literal} to the expected type 'Edm.Int32': "
        "rootMessage.body.contentType must be the integer 0 (text) or 1 (html)."
    )
