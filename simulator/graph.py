"""HTTP routes of Microsoft Graph: posting a message into a channel, by either endpoint.

A POST is decided in this order (docs/SIMULATOR.md): URL and method (400/405; a removed
chatthreads segment is a 400 here), token and the tenant's consent (401/403), the target team
and channel (403 not a member, 404 no channel), body size (413), body (400), then the
policies (Retry-After violations noted; faults: cut connection, 503, 504; throttle: 429),
then the post is recorded (an accept-delay fault marks it); latency, and the held-back answer
of an accept-delay fault, are waited out last, just before answering.

This is the hot path (thousands of calls a second in a rehearsal), so it stays lean: the path is
matched once on the raw bytes, tokens are verified from a cache, the body is parsed once.
"""

from __future__ import annotations

import asyncio
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.channelmessage import MessageIds, created_message, parse_channel_message
from simulator.chatthread import parse_chat_thread
from simulator.clock import Clock
from simulator.directory import segment_removed
from simulator.dropping import DropConnection
from simulator.errors import ConnectionDropError, GraphError
from simulator.graphpaths import GraphTarget, graph_target
from simulator.payload import read_body
from simulator.policies import PolicyChain
from simulator.posts import CHANNEL_MESSAGES, CHATTHREADS, PostAttempt, RecordedPost
from simulator.state import SimState
from simulator.verify import AccessTokenVerifier, Principal

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PARSERS = {CHATTHREADS: parse_chat_thread, CHANNEL_MESSAGES: parse_channel_message}


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
        self._message_ids = MessageIds(clock)

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
        hold: float | None = None
        response: Response
        try:
            post, hold = await self._post(request, request_id, client_request_id)
            response = _success(request, post, echoed)
        except GraphError as exc:
            self._state.counters.reject(exc.status)
            body = exc.body(request_id, echoed["client-request-id"], self._clock())
            response = JSONResponse(body, status_code=exc.status, headers={**echoed, **exc.headers})
        except ConnectionDropError:
            response = DropConnection()
        if request.method == "POST":
            await self._delay(hold)
        return response

    async def _delay(self, hold: float | None) -> None:
        seconds = self._state.faults.latency() + (hold or 0.0)
        if seconds > 0.0:
            await asyncio.sleep(seconds)

    async def _post(
        self, request: Request, request_id: str, client_request_id: str | None
    ) -> tuple[RecordedPost, float | None]:
        headers = request.headers
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        target = graph_target(raw_path, request.method)
        principal = self._authorize(target, headers.get("authorization"))
        body = await read_body(request)
        message = _PARSERS[target.endpoint](headers.get("content-type"), body)
        is_v1 = target.endpoint == CHANNEL_MESSAGES
        attempt = PostAttempt(
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            group_id=target.group_id,
            channel_id=target.channel_id,
            content_type=message.content_type,
            content=message.content,
            raw_body=body,
            request_id=request_id,
            client_request_id=client_request_id,
            retry_attempt=headers.get("retry-attempt"),
            received_at=self._clock(),
            endpoint=target.endpoint,
            message_id=self._message_ids.next() if is_v1 else None,
        )
        # From here to the record: no await, so policies decide on a consistent state.
        hold = self._policies.admit(attempt)
        return self._state.posts.record(attempt, delayed_answer=hold is not None), hold

    def _authorize(self, target: GraphTarget, authorization: str | None) -> Principal:
        """The caller, once the segment, token, consent and target team and channel pass."""
        directory = self._state.directory
        # A removed segment does not exist at all: Graph says so before looking at the token.
        if target.endpoint == CHATTHREADS and directory.settings.chatthreads_removed:
            raise segment_removed()
        principal = self._verifier.authorize(authorization, target.accepted_scopes)
        directory.check_target(principal.tenant_id, target.group_id, target.channel_id)
        return principal


def _success(request: Request, post: RecordedPost, headers: dict[str, str]) -> Response:
    if post.attempt.endpoint != CHANNEL_MESSAGES:
        return Response(status_code=204, headers=headers)
    graph_url = f"{request.url.scheme}://{request.url.netloc}"
    return JSONResponse(created_message(post.attempt, graph_url), status_code=201, headers=headers)
