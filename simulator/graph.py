"""HTTP route of Microsoft Graph: ``POST /beta/groups/{id}/channels/{id}/chatthreads``.

This is the hot path (thousands of calls a second in a rehearsal), so it stays lean: the path is
matched once on the raw bytes, tokens are verified from a cache, the body is parsed once.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.chatthread import bad_request, parse_chat_thread
from simulator.clock import Clock
from simulator.errors import GraphError
from simulator.policies import PolicyChain
from simulator.posts import PostAttempt
from simulator.state import SimState
from simulator.tenants import is_guid
from simulator.verify import AccessTokenVerifier

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_CHATTHREADS = re.compile(rb"^/beta/groups/([^/]+)/channels/([^/]+)/chatthreads$")


def _path_segment(raw: bytes) -> str:
    """Percent-decode a path segment exactly once (a channel id arrives as ``19%3A...``)."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("The path is not valid percent-encoded UTF-8.") from exc


def chatthreads_target(raw_path: bytes, method: str) -> tuple[str, str]:
    """(group id, channel id) of a chatthreads URL, or the error Graph gives for the URL."""
    match = _CHATTHREADS.match(raw_path)
    if match is None:
        segment = _path_segment(raw_path.rstrip(b"/").rsplit(b"/", 1)[-1])
        raise bad_request(f"Resource not found for the segment '{segment}'.")
    if method != "POST":
        raise GraphError(
            405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed; use POST."
        )
    group_id, channel_id = _path_segment(match[1]), _path_segment(match[2])
    if not is_guid(group_id):
        raise bad_request(f"Invalid object identifier '{group_id}'.")
    return group_id.lower(), channel_id


class GraphRoutes:
    def __init__(
        self,
        verifier: AccessTokenVerifier,
        state: SimState,
        policies: PolicyChain,
        clock: Clock,
    ) -> None:
        self._verifier = verifier
        self._state = state
        self._policies = policies
        self._clock = clock

    def routes(self) -> list[Route]:
        # Any method, any path below the versions: unknown ones get Graph's own error answer.
        return [
            Route(f"/{version}/{{rest:path}}", self.endpoint, methods=_ALL_METHODS)
            for version in ("beta", "v1.0")
        ]

    async def endpoint(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id")
        echoed = {"request-id": request_id, "client-request-id": client_request_id or request_id}
        try:
            await self._create_chat_thread(request, request_id, client_request_id)
        except GraphError as exc:
            self._state.counters.reject(exc.status)
            body = exc.body(request_id, echoed["client-request-id"], self._clock())
            return JSONResponse(body, status_code=exc.status, headers={**echoed, **exc.headers})
        return Response(status_code=204, headers=echoed)

    async def _create_chat_thread(
        self, request: Request, request_id: str, client_request_id: str | None
    ) -> None:
        headers = request.headers
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        group_id, channel_id = chatthreads_target(raw_path, request.method)
        principal = self._verifier.authorize(headers.get("authorization"))
        body = await request.body()
        message = parse_chat_thread(headers.get("content-type"), body)
        attempt = PostAttempt(
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            group_id=group_id,
            channel_id=channel_id,
            content_type=message.content_type,
            content=message.content,
            raw_body=body,
            request_id=request_id,
            client_request_id=client_request_id,
            retry_attempt=headers.get("retry-attempt"),
            received_at=self._clock(),
        )
        await self._policies.before_accept(attempt)
        post = self._state.posts.record(attempt)
        await self._policies.after_accept(post)
