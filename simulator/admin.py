"""The admin API under ``/_sim``: what a rehearsal is measured and steered with."""

from __future__ import annotations

import ipaddress
import json
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.authority import Authority
from simulator.clock import OffsetClock, iso_utc
from simulator.knobs import KnobError
from simulator.state import SimState
from simulator.tenants import is_guid

ADMIN_PREFIX = "/_sim"
MAX_PAGE = 10_000


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _non_negative_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ValueError(f"'{name}' must be a non-negative integer, got '{raw}'")
    return int(raw)


def _from_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def _seconds(body: dict[str, object], name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{name}' must be a number of seconds, got {json.dumps(value)}")
    return float(value)


class AdminRoutes:
    def __init__(
        self, state: SimState, authority: Authority, test_clock: OffsetClock | None = None
    ) -> None:
        self._state = state
        self._authority = authority
        self._test_clock = test_clock
        """Only with ``--test-clock``: then ``/_sim/clock`` moves it; otherwise no such route."""

    def routes(self) -> list[Route]:
        clock: list[Route] = []
        if self._test_clock is not None:
            clock = [Route(f"{ADMIN_PREFIX}/clock", self._clock, methods=["GET", "POST"])]
        return [
            *clock,
            Route(f"{ADMIN_PREFIX}/health", self._health),
            Route(f"{ADMIN_PREFIX}/stats", self._stats),
            Route(f"{ADMIN_PREFIX}/posts", self._posts),
            Route(f"{ADMIN_PREFIX}/reset", self._reset, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/tenants/{{tenant}}/revoke", self._revoke, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/config", self._config, methods=["GET", "POST"]),
            Route(f"{ADMIN_PREFIX}/config/v1", self._config_v1, methods=["GET", "POST"]),
            Route(f"{ADMIN_PREFIX}/messages", self._messages),
            Route(f"{ADMIN_PREFIX}/messages/{{message_id}}", self._message),
            Route(f"{ADMIN_PREFIX}/throttle", self._throttle),
            Route(f"{ADMIN_PREFIX}/tokens", self._tokens),
        ]

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def _stats(self, request: Request) -> Response:
        posts, counters = self._state.posts, self._state.counters
        stats: dict[str, object] = {
            "accepted": posts.accepted,
            "unique": posts.unique,
            "duplicates": posts.duplicates,
            "rejected": counters.rejected_json(),
            "token_calls": counters.token_calls_json(),
            "faults": self._state.faults.counts_json(),
        }
        messages = counters.messages_json()
        if messages is not None:  # once a v1.0 message exists (see Counters.messages_json)
            stats["messages"] = messages
        return JSONResponse(stats)

    async def _posts(self, request: Request) -> Response:
        try:
            offset = _non_negative_int(request, "offset", 0)
            limit = min(_non_negative_int(request, "limit", 1000), MAX_PAGE)
        except ValueError as exc:
            return _error(400, str(exc))
        page = self._state.posts.page(offset, limit)
        return JSONResponse(
            {
                "total": self._state.posts.accepted,
                "offset": offset,
                "limit": limit,
                "posts": [post.to_json() for post in page],
            }
        )

    async def _reset(self, request: Request) -> Response:
        self._state.reset()
        return JSONResponse({"ok": True})

    async def _revoke(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not is_guid(tenant):
            return _error(400, f"'{tenant}' is not a tenant GUID")
        only = request.query_params.get("access_tokens_only", "false")
        if only not in ("true", "false"):
            return _error(400, f"'access_tokens_only' must be true or false, got '{only}'")
        revoked = self._authority.revoke_tenant(tenant.lower(), access_tokens_only=only == "true")
        answer: dict[str, object] = {"tenant": tenant.lower(), "refresh_tokens_revoked": revoked}
        if only == "true":
            answer["access_tokens_only"] = True
        return JSONResponse(answer)

    async def _config(self, request: Request) -> Response:
        """GET: every knob; POST: change the knobs named in the JSON object, all or none."""
        if request.method == "POST":
            try:
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise KnobError("the body must be a JSON object of settings")
                knobs = self._state.knobs.changed(changes)
            except ValueError as exc:  # KnobError and JSONDecodeError alike
                return _error(400, str(exc))
            self._state.configure(knobs)
        return JSONResponse(self._state.knobs.to_json())

    async def _config_v1(self, request: Request) -> Response:
        """GET: the v1.0 settings (simulator.v1knobs); POST: change some, all or none."""
        if request.method == "POST":
            try:
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise KnobError("the body must be a JSON object of settings")
                knobs = self._state.v1_knobs.changed(changes)
            except ValueError as exc:  # KnobError and JSONDecodeError alike
                return _error(400, str(exc))
            self._state.configure_v1(knobs)
        return JSONResponse(self._state.v1_knobs.to_json())

    async def _messages(self, request: Request) -> Response:
        """Every v1.0 message with its versions, in the order they were created, a page at a
        time, and the counts a rehearsal asserts (``summary``)."""
        try:
            offset = _non_negative_int(request, "offset", 0)
            limit = min(_non_negative_int(request, "limit", 1000), MAX_PAGE)
        except ValueError as exc:
            return _error(400, str(exc))
        store = self._state.messages
        return JSONResponse(
            {
                "total": store.total,
                "offset": offset,
                "limit": limit,
                "summary": store.summary(),
                "messages": [message.to_json() for message in store.page(offset, limit)],
            }
        )

    async def _message(self, request: Request) -> Response:
        message_id = request.path_params["message_id"]
        message = self._state.messages.get(message_id)
        if message is None:
            return _error(404, f"no v1.0 message '{message_id}' (since the last reset)")
        return JSONResponse(message.to_json())

    async def _clock(self, request: Request) -> Response:
        """GET: the simulator's time; POST ``{"advance": s}`` moves it s >= 0 seconds forward,
        ``{"offset": s}`` sets it s seconds from the wall clock (0: back to real time)."""
        clock = self._test_clock
        assert clock is not None  # the route exists only with a test clock
        if request.method == "POST":
            try:
                body = json.loads(await request.body())
                if not isinstance(body, dict) or set(body) not in ({"advance"}, {"offset"}):
                    raise ValueError('the body must be {"advance": seconds} or {"offset": seconds}')
                if "advance" in body:
                    clock.advance(_seconds(body, "advance"))
                else:
                    clock.offset = _seconds(body, "offset")
            except ValueError as exc:  # JSONDecodeError too
                return _error(400, str(exc))
        return JSONResponse({"now": iso_utc(clock()), "offset": clock.offset})

    async def _throttle(self, request: Request) -> Response:
        return JSONResponse(self._state.throttle.report())

    async def _tokens(self, request: Request) -> Response:
        # Live credentials: whatever address the simulator listens on, only loopback gets them.
        if not _from_loopback(request):
            return _error(403, "the token list is served to loopback clients only")
        tenant = request.query_params.get("tenant")
        if tenant is not None and not is_guid(tenant):
            return _error(400, f"'{tenant}' is not a tenant GUID")
        return JSONResponse(self._state.issued.to_json(tenant.lower() if tenant else None))
