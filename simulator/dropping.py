"""Closing a connection without an answer: the ``--fault-drop`` fault.

ASGI gives an application no way to hang up: uvicorn answers 500 when the application returns
(or raises) without a response. So the simulator serves HTTP with a subclass of uvicorn's
httptools protocol that offers each request an ``abort`` callable through an ASGI scope
extension, and :class:`DropConnection` is the "response" that calls it. The client sees the
connection die mid-request (httpx: ``RemoteProtocolError`` or ``ReadError``), never a status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

EXTENSION = "threadcast.simulator.connection"


class AbortableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus ``scope["extensions"][EXTENSION]["abort"]``."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # abort(), not close(): close() would first flush a TLS close_notify, an orderly end.
        extension: dict[object, object] = {"abort": self.transport.abort}
        self.scope["extensions"] = {EXTENSION: extension}


class DropConnection(Response):
    """Ends the request by aborting its connection: no status line, no headers, nothing."""

    def __init__(self) -> None:
        super().__init__(status_code=500)  # never sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extension = scope.get("extensions", {}).get(EXTENSION)
        if extension is None:
            raise RuntimeError(
                "cannot drop the connection: the server does not offer the "
                f"'{EXTENSION}' extension (serve with simulator.server)"
            )
        cast(Callable[[], None], extension["abort"])()
        # Return only once the server knows the peer is gone, or it would answer 500 for us.
        while (await receive())["type"] != "http.disconnect":
            pass
