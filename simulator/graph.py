"""HTTP routes of Microsoft Graph: posting a message into a channel (either endpoint), editing
and soft-deleting a v1.0 message, and the audience reads (joined teams, a team's channels).

A request is decided in this order (docs/SIMULATOR.md): URL and method (400/405; a removed
chatthreads segment is a 400 here), token and the tenant's consent (401/403), the target team
and channel (403 not a member, 404 no channel), for an edit the message (404), body size
(413), body (400, or 413 for a message over Teams' size), then the policies (Retry-After
violations noted; faults: cut connection, 503, 504; throttle: 429), then the post or the new
version of the message is recorded (an accept-delay fault marks it); latency, and the held-back
answer of an accept-delay fault, are waited out last, just before answering. The reads pass
the same steps but for the body, and draw no faults.

This is the hot path (thousands of calls a second in a rehearsal), so it stays lean: the path is
matched once on the raw bytes, tokens are verified from a cache, the body is parsed once.
"""

from __future__ import annotations

import asyncio
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.audiences import joined_teams, team_channels
from simulator.channelmessage import (
    MessageIds,
    created_message,
    parse_channel_message,
    parse_message_parts,
    parse_message_update,
)
from simulator.chatthread import parse_chat_thread
from simulator.clock import Clock
from simulator.directory import segment_removed
from simulator.dropping import DropConnection
from simulator.errors import ConnectionDropError, GraphError
from simulator.graphpaths import GraphTarget, graph_target
from simulator.messageparts import MAX_REQUEST_BYTES, MessageParts, Where
from simulator.messages import StoredMessage
from simulator.payload import MAX_BODY_BYTES, ChatMessageBody, bad_request, read_body
from simulator.policies import PolicyChain
from simulator.posts import (
    CHANNEL_MESSAGES,
    CHATTHREADS,
    JOINED_TEAMS,
    MESSAGE_EDITS,
    MESSAGE_UPDATE,
    PostAttempt,
    RecordedPost,
)
from simulator.state import SimState
from simulator.verify import AccessTokenVerifier, Principal

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PARSERS = {CHATTHREADS: parse_chat_thread, CHANNEL_MESSAGES: parse_channel_message}
_WRITES = frozenset({"POST", "PATCH"})
DELETED_MESSAGE = "The message was deleted"
"""The stable start of the 400 message for a PATCH of a soft-deleted message."""


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
            response, hold = await self._answer(request, request_id, client_request_id, echoed)
        except GraphError as exc:
            self._state.counters.reject(exc.status)
            body = exc.body(request_id, echoed["client-request-id"], self._clock())
            response = JSONResponse(body, status_code=exc.status, headers={**echoed, **exc.headers})
        except ConnectionDropError:
            response = DropConnection()
        if request.method in _WRITES:
            await self._delay(hold)
        return response

    async def _delay(self, hold: float | None) -> None:
        seconds = self._state.faults.latency() + (hold or 0.0)
        if seconds > 0.0:
            await asyncio.sleep(seconds)

    async def _answer(
        self,
        request: Request,
        request_id: str,
        client_request_id: str | None,
        echoed: dict[str, str],
    ) -> tuple[Response, float | None]:
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        target = graph_target(raw_path, request.method)
        principal = self._authorize(target, request.headers.get("authorization"))
        attempt = _Attempt(request, target, principal, request_id, client_request_id, self._clock)
        if target.endpoint in _PARSERS:
            post, parts, hold = await self._post(request, attempt)
            return _success(request, post, parts, echoed), hold
        if target.endpoint in MESSAGE_EDITS:
            hold = await self._edit(request, target, attempt)
            return Response(status_code=204, headers=echoed), hold
        return JSONResponse(self._read(request, target, attempt), headers=echoed), None

    async def _post(
        self, request: Request, attempt: _Attempt
    ) -> tuple[RecordedPost, MessageParts | None, float | None]:
        target, messages = attempt.target, self._state.messages
        is_v1 = target.endpoint == CHANNEL_MESSAGES
        with_parts = is_v1 and messages.parts
        body = await read_body(request, MAX_REQUEST_BYTES if with_parts else MAX_BODY_BYTES)
        header = request.headers.get("content-type")
        parts: MessageParts | None = None
        if with_parts:
            parts = parse_message_parts(header, body, Where(target.group_id, target.channel_id))
            message = ChatMessageBody(parts.content_type, parts.content)
        else:
            message = _PARSERS[target.endpoint](header, body)
        post_attempt = attempt.make(
            body, message, self._message_ids.next() if is_v1 else None, target.endpoint
        )
        # From here to the record: no await, so policies decide on a consistent state.
        hold = self._policies.admit(post_attempt)
        post = self._state.posts.record(post_attempt, delayed_answer=hold is not None)
        if is_v1:
            messages.create(
                post_attempt, parts or MessageParts(message.content_type, message.content)
            )
        return post, parts, hold

    async def _edit(self, request: Request, target: GraphTarget, attempt: _Attempt) -> float | None:
        """PATCH or softDelete of a v1.0 message this tenant posted in this channel."""
        messages = self._state.messages
        stored = self._message(attempt.principal, target)
        body = await read_body(request, MAX_REQUEST_BYTES if messages.parts else MAX_BODY_BYTES)
        parts: MessageParts | None = None
        if target.endpoint == MESSAGE_UPDATE:
            if stored.deleted_at is not None:
                raise bad_request(
                    f"{DELETED_MESSAGE} (softDelete) and cannot be updated: message "
                    f"'{stored.message_id}'. Undo the deletion first (undoSoftDelete)."
                )
            where = Where(target.group_id, target.channel_id)
            header = request.headers.get("content-type")
            parts = parse_message_update(
                header, body, stored.parts, where, all_parts=messages.parts
            )
        elif body.strip():
            raise bad_request("softDelete takes no request body: send the POST without one.")
        current = parts or stored.parts
        edit = attempt.make(
            body, ChatMessageBody(current.content_type, current.content), stored.message_id
        )
        # No await from here to the record, as for posts.
        hold = self._policies.admit(edit)
        if parts is not None:
            messages.edit(stored, edit, parts)
        else:
            messages.soft_delete(stored, edit)
        return hold

    def _message(self, principal: Principal, target: GraphTarget) -> StoredMessage:
        message_id = str(target.message_id)
        try:
            return self._state.messages.find(
                principal.tenant_id, target.group_id, target.channel_id, message_id
            )
        except KeyError:
            raise GraphError(
                404,
                "NotFound",
                f"Message '{message_id}' was not found in channel '{target.channel_id}' of team "
                f"'{target.group_id}'.",
            ) from None

    def _read(self, request: Request, target: GraphTarget, attempt: _Attempt) -> dict[str, object]:
        state, tenant = self._state, attempt.principal.tenant_id
        query = {name: value for name, value in request.query_params.items()}
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        if target.endpoint == JOINED_TEAMS:
            page = joined_teams(state.directory, state.teams, tenant, query, base_url)
        else:
            page = team_channels(
                state.directory, state.teams, tenant, target.group_id, query, base_url
            )
        self._policies.admit(attempt.make(b"", ChatMessageBody(0, ""), None))
        return page

    def _authorize(self, target: GraphTarget, authorization: str | None) -> Principal:
        """The caller, once the segment, token, consent and target team and channel pass."""
        directory = self._state.directory
        # A removed segment does not exist at all: Graph says so before looking at the token.
        if target.endpoint == CHATTHREADS and directory.settings.chatthreads_removed:
            raise segment_removed()
        principal = self._verifier.authorize(authorization, target.accepted_scopes)
        directory.check_target(principal.tenant_id, target.group_id, target.channel_id)
        return principal


class _Attempt:
    """What every attempt of one request shares; :meth:`make` builds the PostAttempt."""

    __slots__ = ("client_request_id", "clock", "principal", "request_id", "retry", "target")

    def __init__(
        self,
        request: Request,
        target: GraphTarget,
        principal: Principal,
        request_id: str,
        client_request_id: str | None,
        clock: Clock,
    ) -> None:
        self.target = target
        self.principal = principal
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.retry = request.headers.get("retry-attempt")
        self.clock = clock

    def make(
        self,
        body: bytes,
        message: ChatMessageBody,
        message_id: str | None,
        endpoint: str | None = None,
    ) -> PostAttempt:
        target, principal = self.target, self.principal
        return PostAttempt(
            tenant_id=principal.tenant_id,
            client_id=principal.client_id,
            group_id=target.group_id,
            channel_id=target.channel_id,
            content_type=message.content_type,
            content=message.content,
            raw_body=body,
            request_id=self.request_id,
            client_request_id=self.client_request_id,
            retry_attempt=self.retry,
            received_at=self.clock(),
            endpoint=endpoint or target.endpoint,
            message_id=message_id,
        )


def _success(
    request: Request, post: RecordedPost, parts: MessageParts | None, headers: dict[str, str]
) -> Response:
    if post.attempt.endpoint != CHANNEL_MESSAGES:
        return Response(status_code=204, headers=headers)
    graph_url = f"{request.url.scheme}://{request.url.netloc}"
    answer = created_message(post.attempt, graph_url, parts)
    return JSONResponse(answer, status_code=201, headers=headers)
