"""Request body size: refused from Content-Length before reading, or when the stream passes it.

A body is never read further than the limit, whatever the client claims or streams.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.api.errors import TooLarge, error_response


def too_large_message(limit: int) -> str:
    return f"request body is larger than {limit} bytes (THREADCAST_API_MAX_BODY_BYTES)"


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
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await error_response(413, too_large_message(self.limit))(scope, receive, send)
            return
        await self.app(scope, self._capped(receive), send)

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # An HTTPException: FastAPI lets it through its body reading to our handler.
                raise TooLarge(too_large_message(self.limit))
            return message

        return capped
