"""The Microsoft Graph call that posts into a channel, and what came back.

Two endpoints do it: the seed's beta ``chatthreads`` (integer contentType, 204) and its
v1.0 successor ``channel messages`` (string contentType, 201 with the created message, whose
id we keep). Which one a post uses is decided per post (:mod:`worker.endpoint`); everything
else (limits, retries, the ledger) is the same for both.

Every failure is turned into a :class:`GraphReply` here, at the boundary: the caller never
sees an HTTP client's exception, only whether Graph answered, what it said, and, when it did
not answer, whether the request may have reached it (which decides between retrying and
``unknown``).

The posts go out from an asyncio loop on a thread of its own, with aiohttp: hundreds of
answers pending cost a coroutine each. aiohttp, not httpx, on this path: at 500 posts/s in
flight for 250 ms, httpx's async stack (httpcore's pool scans, anyio's TLS stream) cost
about 3 ms of CPU per post, aiohttp's C parser and pool a fraction of it (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp

from threadcast.contract import ContentType

USER_AGENT = "threadcast/0.1"
_REQUEST_ID_MAX = 64  # the ledger's column; Graph's ids are GUIDs
_THAW_GRACE = 0.2  # seconds an expired exchange may still read an answer already received
# Idle connections are closed before a server's keep-alive timeout can close them under a
# request (uvicorn's is 5 s): a request on a connection the server just closed may or may
# not have been read, and would end ``unknown``.
_KEEPALIVE = 4.0


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


def chat_message_body(message: dict[str, object]) -> bytes:
    """A whole v1.0 chatMessage (body and parts: ``MessageParts.chat_message``) as sent."""
    return _json(message)


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


@dataclass(frozen=True)
class Change:
    """One request of an edit (PATCH of the message, ``body`` its new chatMessage) or of a
    recall (POST of its ``softDelete``, no body)."""

    team: str
    channel: str
    message_id: str
    recall: bool
    token: str = field(repr=False)
    body: bytes = field(repr=False)
    client_request_id: str
    attempt: int

    @property
    def method(self) -> str:
        return "POST" if self.recall else "PATCH"


def message_url(graph_url: str, team: str, channel: str, message_id: str) -> str:
    """A v1.0 channel message (what an edit PATCHes; ``/softDelete`` recalls it)."""
    return f"{channel_messages_url(graph_url, team, channel)}/{quote(message_id, safe='')}"


class GraphClient:
    """Posts to Graph from an asyncio loop on a thread of its own, many requests in flight.

    The worker's threads claim, confirm permits and record outcomes (blocking work, on the
    ledger and Redis); the network waits here. :meth:`post` hands a request to the loop and
    returns at once with a future of the reply.
    """

    def __init__(
        self, graph_url: str, ssl_context: ssl.SSLContext, timeout: float, connections: int
    ) -> None:
        self._graph_url = graph_url
        self._deadline = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="graph-posts", daemon=True
        )
        self._thread.start()
        opening = self._open(ssl_context, timeout, connections)
        self._session = asyncio.run_coroutine_threadsafe(opening, self._loop).result()

    async def _open(
        self, ssl_context: ssl.SSLContext, timeout: float, connections: int
    ) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=ssl_context,
            limit=connections,
            limit_per_host=connections,
            keepalive_timeout=_KEEPALIVE,
        )
        # Getting a connection (from the pool, or a new one) times out on its own, before
        # the exchange's deadline: a request that never left is then known as such.
        limits = aiohttp.ClientTimeout(total=None, connect=timeout / 2)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=limits,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    def post(self, post: Post) -> Future[GraphReply]:
        """Send ``post`` now; its reply (never an exception) when it comes."""
        url = post.endpoint.url(self._graph_url, post.group, post.channel)
        exchange = self._send("POST", url, post.body, _headers(post.token, post))
        return asyncio.run_coroutine_threadsafe(exchange, self._loop)

    def change(self, change: Change) -> Future[GraphReply]:
        """Make an edit's PATCH or a recall's softDelete now; its reply when it comes."""
        url = message_url(self._graph_url, change.team, change.channel, change.message_id)
        if change.recall:
            url += "/softDelete"
        exchange = self._send(change.method, url, change.body, _headers(change.token, change))
        return asyncio.run_coroutine_threadsafe(exchange, self._loop)

    async def _send(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> GraphReply:
        """The exchange, within THREADCAST_HTTP_TIMEOUT. A process that was frozen (a paused
        VM, SIGSTOP) wakes with every deadline passed: an answer already waiting in its
        socket is still read (a short grace) before the deadline is called, so a late answer
        beats a guess (``unknown``), as a blocking read would have."""
        started = time.perf_counter()
        exchange = asyncio.ensure_future(self._exchange(method, url, body, headers, started))
        done, _ = await asyncio.wait({exchange}, timeout=self._deadline)
        if not done:
            done, _ = await asyncio.wait({exchange}, timeout=_THAW_GRACE)
        if done:
            return exchange.result()
        exchange.cancel()
        return _no_answer("ReadTimeout", "no answer within THREADCAST_HTTP_TIMEOUT", started)

    async def _exchange(
        self, method: str, url: str, body: bytes, headers: dict[str, str], started: float
    ) -> GraphReply:
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                answer = await response.read()
        except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
            return _no_answer("ConnectError", str(exc), started, sent=False)
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: nothing sent
            return _no_answer("ConnectTimeout", str(exc), started, sent=False)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            return _no_answer("RemoteProtocolError", str(exc), started)
        except (aiohttp.ClientError, OSError) as exc:
            return _no_answer("ReadError", f"{type(exc).__name__}: {exc}", started)
        except Exception as exc:  # nothing may break the boundary
            return _broken(exc, started)
        return _reply(response.status, response.headers, answer, started)

    async def _close(self) -> None:
        await self._session.close()

    def close(self) -> None:
        closing = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        try:
            closing.result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def reply_of(future: Future[GraphReply]) -> GraphReply:
    """A request's reply; if the loop died under it, no answer (the request may have gone
    out)."""
    try:
        return future.result()
    except Exception as exc:
        return GraphReply(
            None,
            0.0,
            error_code=f"client:{type(exc).__name__}",
            error_message=str(exc)[:500],
            maybe_sent=True,
        )


def _headers(token: str, post: Post | Change) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "client-request-id": post.client_request_id,
        "return-client-request-id": "true",
        "User-Agent": USER_AGENT,
    }
    if post.attempt > 1:
        headers["retry-attempt"] = str(post.attempt - 1)
    return headers


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _no_answer(kind: str, text: str, started: float, *, sent: bool = True) -> GraphReply:
    """No HTTP answer: ``sent`` False when the request provably never left (safe to retry)."""
    return GraphReply(
        status=None,
        latency_ms=_elapsed_ms(started),
        error_code=f"network:{kind}",
        error_message=text[:500] or kind,
        maybe_sent=sent,
    )


def _broken(exc: Exception, started: float) -> GraphReply:
    """A failure no HTTP error class covers: the request may have gone out."""
    return GraphReply(
        status=None,
        latency_ms=_elapsed_ms(started),
        error_code=f"client:{type(exc).__name__}",
        error_message=str(exc)[:500] or type(exc).__name__,
        maybe_sent=True,
    )


def _reply(status: int, headers: Mapping[str, str], body: bytes, started: float) -> GraphReply:
    """Whatever Graph answered, in the shapes the ledger's columns hold: an odd header or
    body is cut to size or dropped, never raised (a posted delivery must be recorded)."""
    ok = 200 <= status < 300
    code, message = (None, None) if ok else _graph_error(body)
    request_id = headers.get("request-id")
    return GraphReply(
        status=status,
        latency_ms=_elapsed_ms(started),
        request_id=request_id[:_REQUEST_ID_MAX] if request_id else None,
        error_code=code[:200] if code else None,
        error_message=message,
        retry_after=parse_retry_after(headers.get("Retry-After")),
        message_id=_created_id(body) if status == 201 else None,
    )


def _parsed(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        return None


def _created_id(body: bytes) -> str | None:
    found = _parsed(body)
    value = found.get("id") if isinstance(found, dict) else None
    return str(value)[:200] if value is not None else None


def _graph_error(body: bytes) -> tuple[str | None, str | None]:
    """Graph's ``{"error": {"code", "message"}}``; anything else is kept short and verbatim."""
    found = _parsed(body)
    error = found.get("error") if isinstance(found, dict) else None
    if isinstance(error, dict):
        return str(error.get("code")), str(error.get("message"))[:1000]
    text = body[:500].decode("utf-8", "replace")
    return None, text or None


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
