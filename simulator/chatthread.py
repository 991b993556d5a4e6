"""Strict validation of a ``chatthreads`` request body, exactly as the beta endpoint documents it:
``{"rootMessage": {"body": {"contentType": 0|1, "content": "..."}}}`` with an INTEGER
contentType. Anything else is answered 400, naming the problem, so client bugs surface here
rather than in a tenant's channel."""

from __future__ import annotations

import json
from dataclasses import dataclass

from simulator.errors import GraphError

CONTENT_TYPES = {0: "text", 1: "html"}
_SCHEMA: dict[str, tuple[str, frozenset[str]]] = {
    # JSON path → (Graph type name for messages, the exact set of properties it must have)
    "": ("microsoft.graph.chatThread", frozenset({"rootMessage"})),
    "rootMessage": ("microsoft.graph.chatMessage", frozenset({"body"})),
    "rootMessage.body": ("microsoft.graph.itemBody", frozenset({"contentType", "content"})),
}


@dataclass(frozen=True, slots=True)
class ChatMessageBody:
    content_type: int
    content: str


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def parse_chat_thread(content_type_header: str | None, body: bytes) -> ChatMessageBody:
    _require_json_media_type(content_type_header)
    thread = _exact_object(_load_json(body), "")
    root_message = _exact_object(thread["rootMessage"], "rootMessage")
    message = _exact_object(root_message["body"], "rootMessage.body")
    return ChatMessageBody(_content_type(message["contentType"]), _content(message["content"]))


def _require_json_media_type(header: str | None) -> None:
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise bad_request(
            f"Content-Type must be 'application/json', got '{header or ''}'. "
            "Unable to read JSON request payload."
        )


def _load_json(body: bytes) -> object:
    if not body.strip():
        raise bad_request("Empty Payload. JSON content expected.")
    try:
        return json.loads(body, object_pairs_hook=_without_duplicates)
    except ValueError as exc:
        raise bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set "
            f"and payload is of valid JSON format. ({exc})"
        ) from exc


def _without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Python keeps the last of two equal keys; Graph refuses the payload, and so do we.
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise bad_request(f"Duplicate property named '{name}' is not allowed.")
        result[name] = value
    return result


def _exact_object(value: object, path: str) -> dict[str, object]:
    """``value`` (found at ``path``) as a JSON object with exactly the properties of its type."""
    type_name, properties = _SCHEMA[path]
    if not isinstance(value, dict):
        raise bad_request(f"'{path or 'the request body'}' must be a JSON object ({type_name}).")
    unknown = [name for name in value if name not in properties]
    if unknown:
        raise bad_request(
            f"The property '{unknown[0]}' does not exist on type '{type_name}'. Make sure to "
            "only use property names that are defined by the type."
        )
    missing = sorted(properties - value.keys())
    if missing:
        raise bad_request(f"Required property '{_join(path, missing[0])}' is missing.")
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _content_type(value: object) -> int:
    # bool is an int in Python but `true` is not an integer on the wire.
    if type(value) is int and value in CONTENT_TYPES:
        return value
    literal = f"'{value}'" if isinstance(value, str) else json.dumps(value)
    raise bad_request(
        f"Cannot convert the literal {literal} to the expected type 'Edm.Int32': "
        "rootMessage.body.contentType must be the integer 0 (text) or 1 (html)."
    )


def _content(value: object) -> str:
    if not isinstance(value, str):
        raise bad_request("rootMessage.body.content must be a string.")
    if not value.strip():
        raise bad_request("rootMessage.body.content must not be empty.")
    return value
