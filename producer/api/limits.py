"""Request body size: refused from Content-Length before reading, or when the stream passes it.

A body is never read further than the limit, whatever the client claims or streams. A
broadcast (``POST /v1/broadcasts``) may be larger by its images' data: up to IMAGE_ALLOWANCE
more, Graph's limit for a whole message with its images as sent; what is not image data is
still held to THREADCAST_API_MAX_BODY_BYTES (checked once the body is read, before anything
is validated).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.api.errors import TooLarge, error_response
from threadcast.message import MAX_REQUEST_BYTES

#: What a broadcast's images (their base64 ``data``) may add to a request body.
IMAGE_ALLOWANCE = MAX_REQUEST_BYTES
#: The routes whose body may carry images.
WITH_IMAGES = frozenset({("POST", "/v1/broadcasts"), ("POST", "/v1/broadcasts/dry-run")})


def too_large_message(limit: int, images: bool = False) -> str:
    message = f"request body is larger than {limit} bytes (THREADCAST_API_MAX_BODY_BYTES)"
    if images:
        message += f", images' data aside (they may add up to {IMAGE_ALLOWANCE} bytes)"
    return message


def image_bytes(body: object) -> int:
    """The length of a broadcast body's image data (base64 text is ASCII: one byte each)."""
    images = body.get("images") if isinstance(body, dict) else None
    if not isinstance(images, list):
        return 0
    return sum(
        len(image["data"])
        for image in images
        if isinstance(image, dict) and isinstance(image.get("data"), str)
    )


def too_many_targets_message(count: int, limit: int) -> str:
    return f"targets: {count} targets, at most {limit} per request (THREADCAST_API_MAX_TARGETS)"


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        images = (scope.get("method"), scope.get("path")) in WITH_IMAGES
        limit = self.limit + IMAGE_ALLOWANCE if images else self.limit
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            message = too_large_message(self.limit, images)
            await error_response(413, message)(scope, receive, send)
            return
        await self.app(scope, self._capped(receive, limit, images), send)

    def _capped(self, receive: Receive, limit: int, images: bool) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                # An HTTPException: FastAPI lets it through its body reading to our handler.
                raise TooLarge(too_large_message(self.limit, images))
            return message

        return capped
