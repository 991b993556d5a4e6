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

import asyncio
import email.utils
import json
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from threadcast.contract import ContentType

USER_AGENT = "threadcast/0.1"
_REQUEST_ID_MAX = 64  # the ledger's column; Graph's ids are GUIDs
_THAW_GRACE = 0.2  # seconds an expired exchange may still read an answer already received
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


@dataclass(frozen=True)
class Post:
    """One request to make: everything the wire needs, nothing the ledger keeps."""

    endpoint: Endpoint
    token: str = field(repr=False)
    group: str
    channel: str
    body: bytes = field(repr=False)
    client_request_id: str
    attempt: int


class GraphClient:
    """Posts to Graph from an asyncio loop on a thread of its own, many requests in flight.

    The worker's threads claim, confirm permits and record outcomes (blocking work, on the
    ledger and Redis); the network waits here, where hundreds of answers pending cost a
    coroutine each rather than a thread or a process each. :meth:`post` hands a request to
    the loop and returns at once with a future of the reply. Requests go straight to the
    transport: the client layer above it (cookies, redirects, auth flows, URL and header
    merging) does nothing a Graph post needs and costs CPU per request.
    """

    def __init__(
        self, graph_url: str, ssl_context: ssl.SSLContext, timeout: float, connections: int
    ) -> None:
        self._graph_url = graph_url
        self._deadline = timeout
        # Connecting and waiting for a pooled connection time out on their own, before the
        # whole exchange's deadline: a request that never left is then known as such.
        self._timeout = httpx.Timeout(None, connect=timeout / 2, pool=timeout / 2).as_dict()
        self._loop = asyncio.new_event_loop()
        self._transport = httpx.AsyncHTTPTransport(
            verify=ssl_context,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="graph-posts", daemon=True
        )
        self._thread.start()

    def post(self, post: Post) -> Future[GraphReply]:
        """Send ``post`` now; its reply (never an exception) when it comes."""
        request = _request(self._graph_url, post, self._timeout)
        return asyncio.run_coroutine_threadsafe(self._send(request), self._loop)

    async def _send(self, request: httpx.Request) -> GraphReply:
        """The exchange, within THREADCAST_HTTP_TIMEOUT. A process that was frozen (a paused
        VM, SIGSTOP) wakes with every deadline passed: an answer already waiting in its
        socket is still read (a short grace) before the deadline is called, so a late answer
        beats a guess (``unknown``), as a blocking read would have."""
        started = time.perf_counter()
        exchange = asyncio.ensure_future(self._exchange(request, started))
        done, _ = await asyncio.wait({exchange}, timeout=self._deadline)
        if not done:
            done, _ = await asyncio.wait({exchange}, timeout=_THAW_GRACE)
        if done:
            return exchange.result()
        exchange.cancel()
        return _no_answer(httpx.ReadTimeout("no answer within THREADCAST_HTTP_TIMEOUT"), started)

    async def _exchange(self, request: httpx.Request, started: float) -> GraphReply:
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()  # the connection goes back to the pool
        except httpx.HTTPError as exc:
            return _no_answer(exc, started)
        except Exception as exc:  # nothing may break the boundary
            return _broken(exc, started)
        return _reply(response, started)

    def close(self) -> None:
        closing = asyncio.run_coroutine_threadsafe(self._transport.aclose(), self._loop)
        try:
            closing.result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def _request(graph_url: str, post: Post, timeout: dict[str, float | None]) -> httpx.Request:
    headers = {
        "Authorization": f"Bearer {post.token}",
        "Content-Type": "application/json",
        "client-request-id": post.client_request_id,
        "return-client-request-id": "true",
        "User-Agent": USER_AGENT,
    }
    if post.attempt > 1:
        headers["retry-attempt"] = str(post.attempt - 1)
    return httpx.Request(
        "POST", post.endpoint.url(graph_url, post.group, post.channel), content=post.body,
        headers=headers, extensions={"timeout": timeout},
    )  # fmt: skip


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


def _broken(exc: Exception, started: float) -> GraphReply:
    """A failure no HTTP error class covers: the request may have gone out."""
    return GraphReply(
        status=None, latency_ms=_elapsed_ms(started), error_code=f"client:{type(exc).__name__}",
        error_message=str(exc)[:500] or type(exc).__name__, maybe_sent=True,
    )  # fmt: skip


def _reply(response: httpx.Response, started: float) -> GraphReply:
    """Whatever Graph answered, in the shapes the ledger's columns hold: an odd header or
    body is cut to size or dropped, never raised (a posted delivery must be recorded)."""
    code, message = (None, None) if response.is_success else _graph_error(response)
    return GraphReply(
        status=response.status_code,
        latency_ms=_elapsed_ms(started),
        request_id=_header(response, "request-id", _REQUEST_ID_MAX),
        error_code=code[:200] if code else None,
        error_message=message,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        message_id=_created_id(response) if response.status_code == 201 else None,
    )


def _header(response: httpx.Response, name: str, limit: int) -> str | None:
    value = response.headers.get(name)
    return value[:limit] if value else None


def _created_id(response: httpx.Response) -> str | None:
    try:
        found = response.json().get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return str(found)[:200] if found is not None else None


def _graph_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """Graph's ``{"error": {"code", "message"}}``; anything else is kept short and verbatim."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code")), str(error.get("message"))[:1000]
    except (ValueError, AttributeError, RecursionError):  # not JSON, not Graph's, too deep
        return None, response.text[:500] or None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds, from either form (delta-seconds or HTTP-date); None if garbage."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes '²'
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
