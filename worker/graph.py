"""The Microsoft Graph call that posts into a channel, and what came back.

Two endpoints do it: the seed's beta ``chatthreads`` (integer contentType, 204) and its
v1.0 successor ``channel messages`` (string contentType, 201 with the created message, whose
id we keep). Which one a post uses is decided per post (:mod:`worker.endpoint`); everything
else (limits, retries, the ledger) is the same for both.

Every failure is turned into a :class:`GraphReply` here, at the boundary: the caller never
sees an httpx exception, only whether Graph answered, what it said, and, when it did not
answer, whether the request may have reached it (which decides between retrying and
``unknown``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from threadcast.contract import ContentType

USER_AGENT = "threadcast/0.1"

# Raised before a single byte of the request left: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True)
class GraphReply:
    status: int | None  # None: no HTTP answer at all
    latency_ms: float
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    maybe_sent: bool = False  # no answer, and the request may have reached Graph
    message_id: str | None = None  # the created message's id (channel-messages endpoint)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def chatthreads_url(graph_url: str, group: str, channel: str) -> str:
    # The channel id holds ':' and '@'; encode everything so the path cannot be re-read.
    return f"{graph_url}/beta/groups/{group}/channels/{quote(channel, safe='')}/chatthreads"


def chatthread_body(content: str, content_type: ContentType) -> bytes:
    """The request body exactly as the endpoint documents it (contentType an integer)."""
    body = {"rootMessage": {"body": {"contentType": content_type.wire, "content": content}}}
    return _json(body)


def channel_messages_url(graph_url: str, team: str, channel: str) -> str:
    return f"{graph_url}/v1.0/teams/{team}/channels/{quote(channel, safe='')}/messages"


def channel_message_body(content: str, content_type: ContentType) -> bytes:
    """v1.0's chatMessage body: here contentType is the string "text" or "html"."""
    return _json({"body": {"contentType": content_type.value, "content": content}})


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: Callable[[str, str, str], str]
    body: Callable[[str, ContentType], bytes]


ENDPOINTS = {
    "chatthreads": Endpoint("chatthreads", chatthreads_url, chatthread_body),
    "channel-messages": Endpoint("channel-messages", channel_messages_url, channel_message_body),
}


class GraphClient:
    """One keep-alive HTTPS connection pool per worker process, posting to either endpoint.

    Requests go straight to the transport: the client layer above it (cookies, redirects,
    auth flows, URL and header merging) does nothing a Graph post needs and cost about a
    sixth of a worker's CPU per delivery.
    """

    def __init__(self, graph_url: str, transport: httpx.HTTPTransport, timeout: float) -> None:
        self._graph_url = graph_url
        self._transport = transport
        self._timeout = httpx.Timeout(timeout).as_dict()

    def post(
        self, endpoint: Endpoint, token: str, group: str, channel: str, body: bytes,
        client_request_id: str, attempt: int,
    ) -> GraphReply:  # fmt: skip
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
            "User-Agent": USER_AGENT,
        }
        if attempt > 1:
            headers["retry-attempt"] = str(attempt - 1)
        request = httpx.Request(
            "POST", endpoint.url(self._graph_url, group, channel), content=body,
            headers=headers, extensions={"timeout": self._timeout},
        )  # fmt: skip
        started = time.perf_counter()
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()  # the connection goes back to the pool
        except httpx.HTTPError as exc:
            return _no_answer(exc, started)
        return _reply(response, started)

    def close(self) -> None:
        self._transport.close()


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _no_answer(exc: httpx.HTTPError, started: float) -> GraphReply:
    kind = type(exc).__name__
    return GraphReply(
        status=None,
        latency_ms=_elapsed_ms(started),
        error_code=f"network:{kind}",
        error_message=str(exc)[:500] or kind,
        maybe_sent=not isinstance(exc, _NOT_SENT),
    )


def _reply(response: httpx.Response, started: float) -> GraphReply:
    code, message = (None, None) if response.is_success else _graph_error(response)
    return GraphReply(
        status=response.status_code,
        latency_ms=_elapsed_ms(started),
        request_id=response.headers.get("request-id"),
        error_code=code,
        error_message=message,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        message_id=_created_id(response) if response.status_code == 201 else None,
    )


def _created_id(response: httpx.Response) -> str | None:
    try:
        found = response.json().get("id")
    except (ValueError, AttributeError):
        return None
    return str(found)[:200] if found is not None else None


def _graph_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """Graph's ``{"error": {"code", "message"}}``; anything else is kept short and verbatim."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code")), str(error.get("message"))[:1000]
    except (ValueError, AttributeError):
        return None, response.text[:500] or None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds, from either form (delta-seconds or HTTP-date); None if garbage."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
