"""Bearer API keys: the gate in front of ``/v1`` and ``/metrics``, and who is calling.

The gate is ASGI middleware, so a caller without a valid key is refused before its body is
read or any route is looked up: the answer is the same 401 whatever was wrong and whatever
the path, and it reveals nothing else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from producer.api.errors import error_response
from threadcast.apikeys import ApiKey, identify
from threadcast.metrics import record_auth_failure

PROTECTED = ("/v1/", "/metrics")
CALLER = "threadcast.caller"  # the scope key the gate leaves the caller's ApiKey under
_MAX_KEY = 1024  # nobody's key is longer; do not hash whatever a client sends
UNAUTHORIZED = "missing or invalid API key: send Authorization: Bearer <key>"

bearer = HTTPBearer(auto_error=False, description="an API key from THREADCAST_API_KEYS")


def presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, key = text.partition(" ")
            key = key.strip()
            if scheme.lower() == "bearer" and 0 < len(key) <= _MAX_KEY:
                return key
            return None
    return None


class ApiKeyGate:
    def __init__(self, app: ASGIApp, keys: tuple[ApiKey, ...]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        found = identify(self.keys, key) if key is not None else None
        if found is None:
            record_auth_failure()
            response = error_response(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope[CALLER] = found
        await self.app(scope, receive, send)


def caller(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> ApiKey:
    """The API key this request came with (the gate has checked it)."""
    found = request.scope[CALLER]
    assert isinstance(found, ApiKey)
    return found
