"""Graph request payloads: read with a size cap, parsed strictly.

What both message endpoints share: a body of at most :data:`MAX_BODY_BYTES` (read
incrementally, so an oversized body is refused without being held in memory), JSON with
``Content-Type: application/json``, objects with exactly the properties of their Graph type.
Every violation is a :class:`~simulator.errors.GraphError` naming the problem.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from starlette.requests import Request

from simulator.errors import GraphError

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChatMessageBody:
    """A message body, its content type normalised to Graph's bodyType number (0 text, 1 html)."""

    content_type: int
    content: str


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def too_large(limit: int = MAX_BODY_BYTES) -> GraphError:
    return GraphError(
        413,
        "RequestEntityTooLarge",
        f"The request body is larger than the {limit} bytes ({limit // (1024 * 1024)} MiB) "
        "accepted.",
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``limit`` bytes.

    The rest of an oversized body is never read into memory: uvicorn discards what arrives
    after the answer, so the connection stays usable.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def require_json_media_type(header: str | None) -> None:
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise bad_request(
            f"Content-Type must be 'application/json', got '{header or ''}'. "
            "Unable to read JSON request payload."
        )


def load_json(body: bytes) -> object:
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


def exact_object(
    value: object, path: str, type_name: str, properties: Collection[str]
) -> dict[str, object]:
    """``value`` (found at ``path``) as a JSON object with exactly the ``properties`` given."""
    if not isinstance(value, dict):
        raise bad_request(f"'{path or 'the request body'}' must be a JSON object ({type_name}).")
    unknown = [name for name in value if name not in properties]
    if unknown:
        raise bad_request(
            f"The property '{unknown[0]}' does not exist on type '{type_name}'. Make sure to "
            "only use property names that are defined by the type."
        )
    missing = sorted(set(properties) - value.keys())
    if missing:
        name = f"{path}.{missing[0]}" if path else missing[0]
        raise bad_request(f"Required property '{name}' is missing.")
    return value


def message_content(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{path} must be a string.")
    if not value.strip():
        raise bad_request(f"{path} must not be empty.")
    return value
