"""Counting every request by method, route template and status (outermost middleware).

The route *template* (``/v1/broadcasts/{broadcast_id}``), never the raw path: one time
series per route, not one per broadcast id a client made up.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadcast.metrics import record_api_request

UNMATCHED = "other"


class RequestCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app fails before answering, the server answers 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            record_api_request(scope["method"], route_of(scope), status)


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED
