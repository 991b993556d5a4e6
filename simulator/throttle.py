"""Throttling with the documented Microsoft Teams limits, as a policy on the message endpoints.

Five kinds of scope, each enforced only while its limit is above 0 (see
:class:`~simulator.knobs.ThrottleLimits`): the app (the token's ``appid``) across all tenants,
each tenant, each team (the chatthreads ``{group-id}`` / v1.0 ``{team-id}``; it also bounds
every channel of the team), each channel of a tenant per second (``channel_rps``), each
channel per UTC day. The rate limits count accepted requests in a sliding one-second window
over their arrival times. A request over any limit gets ``429 TooManyRequests`` with
``Retry-After`` and is not counted.

The tenant, team and channel scopes are keyed without the app: a rehearsal posts as one app,
and several apps in one tenant would share those limits (stricter than Graph).

The other Graph requests have limits of their own (:class:`~simulator.v1knobs.OperationLimits`),
per app (key ``appid``) and per app per tenant (key tenant), each kind its own scopes: message
edits (PATCH and softDelete together), ``/me/joinedTeams``, ``/teams/{id}/channels``. Graph's
"4 requests per second per app on a given team or channel" counts every request there, so
edits and channel lists also count in the team scope, and edits in the per-second channel
scope, beside the posts; only posts count in the daily channel quota (it counts messages).

Besides enforcing, the throttle measures what a client did: per scope, the fullest window,
the 429s, and the requests sent while a Retry-After announced for the scope was running.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TypeVar

from simulator.clock import Clock
from simulator.errors import GraphError
from simulator.knobs import ThrottleLimits
from simulator.posts import (
    JOINED_TEAMS,
    LIST_CHANNELS,
    MESSAGE_EDITS,
    PostAttempt,
)
from simulator.v1knobs import OperationLimits
from simulator.windows import DayCount, SlidingWindow


class Scope:
    """One throttled scope: its meter, and what the client did to it."""

    __slots__ = ("meter", "retry_until", "throttled", "violations")

    def __init__(self, meter: SlidingWindow | DayCount) -> None:
        self.meter = meter
        self.throttled = 0
        self.violations = 0
        self.retry_until = 0.0
        """Until when the last Retry-After announced for this scope runs (epoch seconds)."""

    def to_json(self, limit: int, now: float) -> dict[str, int]:
        meter = self.meter
        measured = (
            {"max_window": meter.max_window}
            if isinstance(meter, SlidingWindow)
            else {"today": meter.today(now)}
        )
        return {
            "limit": limit,
            **measured,
            "throttled": self.throttled,
            "retry_after_violations": self.violations,
        }

    def over_limit(self, limit: int, now: float) -> bool:
        meter = self.meter
        seen = meter.max_window if isinstance(meter, SlidingWindow) else meter.today(now)
        return 0 < limit < seen


_ChannelKey = tuple[str, str, str]
"""(tenant, team, channel): a tuple, so that the hot path builds no string for it."""
_Bound = tuple[Scope, int, str, str | _ChannelKey]
"""A scope a request falls in: (scope, the limit in force, kind, key)."""
_K = TypeVar("_K", str, _ChannelKey)
_LIMIT_WORDS = {
    "app": "requests per second across all tenants",
    "tenant": "requests per second in tenant {key}",
    "team": "requests per second on team {key}",
    "channel_rps": "requests per second in channel {key}",
    "channel": "messages per UTC day in channel {key}",
    "edit_app": "message edits (PATCH, softDelete) per second across all tenants",
    "edit_tenant": "message edits (PATCH, softDelete) per second in tenant {key}",
    "joined_teams_app": "joinedTeams requests per second across all tenants",
    "joined_teams_tenant": "joinedTeams requests per second in tenant {key}",
    "channels_app": "channel list requests per second across all tenants",
    "channels_tenant": "channel list requests per second in tenant {key}",
}
OPERATION_KINDS = (
    "edit_app",
    "edit_tenant",
    "joined_teams_app",
    "joined_teams_tenant",
    "channels_app",
    "channels_tenant",
)
"""The scope kinds of :class:`~simulator.v1knobs.OperationLimits`, named as its fields are
(without ``_rps``)."""


def _scope(scopes: dict[_K, Scope], key: _K, daily: bool = False) -> Scope:
    scope = scopes.get(key)
    if scope is None:
        scope = scopes[key] = Scope(DayCount() if daily else SlidingWindow())
    return scope


def _key_text(key: str | _ChannelKey) -> str:
    return key if isinstance(key, str) else "/".join(key)


class Throttle:
    def __init__(
        self, limits: ThrottleLimits, clock: Clock, operations: OperationLimits | None = None
    ) -> None:
        self.limits = limits
        self.operations = operations if operations is not None else OperationLimits()
        self._enabled = limits.enabled or self.operations.enabled
        self.operation_scopes: dict[str, dict[str, Scope]] = {k: {} for k in OPERATION_KINDS}
        self._clock = clock
        self._last = 0.0
        self.apps: dict[str, Scope] = {}
        self.tenants: dict[str, Scope] = {}
        self.teams: dict[str, Scope] = {}
        self.channel_rates: dict[_ChannelKey, Scope] = {}
        """Per-second channel scopes, keyed (tenant, group, channel)."""
        self.channels: dict[str, Scope] = {}
        """Daily channel scopes, keyed ``{group}/{channel}``, as the report shows them."""
        self.throttled = 0
        """429 answers (a request over two limits counts once here, once in each scope)."""
        self.violations = 0
        """Requests sent while a Retry-After of at least one of their scopes was running."""
        self._cached: tuple[PostAttempt, list[_Bound]] | None = None

    def configure(self, limits: ThrottleLimits) -> None:
        # Scopes keep their history: a lowered limit is judged against the traffic already seen.
        self.limits = limits
        self._enabled = limits.enabled or self.operations.enabled
        self._cached = None

    def configure_operations(self, operations: OperationLimits) -> None:
        self.operations = operations
        self._enabled = self.limits.enabled or operations.enabled
        self._cached = None

    def reset(self) -> None:
        for scopes in (self.apps, self.tenants, self.teams, self.channels):
            scopes.clear()
        for kind in self.operation_scopes.values():
            kind.clear()
        self.channel_rates.clear()
        self.throttled = self.violations = 0
        self._last = 0.0  # no window left to keep monotonic (a test clock may have stepped back)
        self._cached = None

    def observe(self, attempt: PostAttempt) -> None:
        """Count a Retry-After violation, whatever the request's answer will be."""
        if not self._enabled:
            return
        now = self._now(attempt)
        violated = False
        for scope, _, _, _ in self._bounds(attempt):
            if now < scope.retry_until:
                scope.violations += 1
                violated = True
        self.violations += violated

    def admit(self, attempt: PostAttempt) -> None:
        """Count the request in every scope, or refuse it (429) if any scope is full."""
        if not self._enabled:
            return
        now = self._now(attempt)
        bounds = self._bounds(attempt)
        over = [(bound, wait) for bound in bounds if (wait := bound[0].meter.wait(now, bound[1]))]
        if over:
            raise self._refuse(over, now)
        for scope, _, _, _ in bounds:
            scope.meter.add(now)

    def hold(self, attempt: PostAttempt) -> float | None:
        return None

    def _now(self, attempt: PostAttempt) -> float:
        # Windows need arrival times that never decrease, even if the wall clock steps back.
        self._last = max(self._last, attempt.received_at)
        return self._last

    def _bounds(self, attempt: PostAttempt) -> list[_Bound]:
        # observe() and admit() see each request back to back: look its scopes up once.
        cached = self._cached
        if cached is not None and cached[0] is attempt:
            return cached[1]
        bounds = self._find_bounds(attempt)
        self._cached = (attempt, bounds)
        return bounds

    def _find_bounds(self, attempt: PostAttempt) -> list[_Bound]:
        endpoint = attempt.endpoint
        if endpoint in MESSAGE_EDITS:
            return [*self._operation_bounds(attempt, "edit"), *self._on_team(attempt, True)]
        if endpoint == LIST_CHANNELS:
            return [*self._operation_bounds(attempt, "channels"), *self._on_team(attempt, False)]
        if endpoint == JOINED_TEAMS:
            return self._operation_bounds(attempt, "joined_teams")
        return self._post_bounds(attempt)

    def _operation_bounds(self, attempt: PostAttempt, prefix: str) -> list[_Bound]:
        bounds: list[_Bound] = []
        for suffix, key in (("app", attempt.client_id), ("tenant", attempt.tenant_id)):
            kind = f"{prefix}_{suffix}"
            limit: int = getattr(self.operations, f"{kind}_rps")
            if limit:
                bounds.append((_scope(self.operation_scopes[kind], key), limit, kind, key))
        return bounds

    def _on_team(self, attempt: PostAttempt, on_channel: bool) -> list[_Bound]:
        """Graph's per-team (and per-channel) limits count every request there, not posts only."""
        limits, tenant, team = self.limits, attempt.tenant_id, attempt.group_id
        bounds: list[_Bound] = []
        if limits.team_rps:
            bounds.append((_scope(self.teams, team), limits.team_rps, "team", team))
        if on_channel and limits.channel_rps:
            key = (tenant, team, attempt.channel_id)
            scope = _scope(self.channel_rates, key)
            bounds.append((scope, limits.channel_rps, "channel_rps", key))
        return bounds

    def _post_bounds(self, attempt: PostAttempt) -> list[_Bound]:
        # The hot path: no strings are built here unless the request is throttled.
        limits, tenant, team = self.limits, attempt.tenant_id, attempt.group_id
        bounds: list[_Bound] = []
        if limits.app_rps:
            app = attempt.client_id
            bounds.append((_scope(self.apps, app), limits.app_rps, "app", app))
        if limits.tenant_rps:
            bounds.append((_scope(self.tenants, tenant), limits.tenant_rps, "tenant", tenant))
        if limits.team_rps:
            bounds.append((_scope(self.teams, team), limits.team_rps, "team", team))
        if limits.channel_rps:
            key = (tenant, team, attempt.channel_id)
            scope = _scope(self.channel_rates, key)
            bounds.append((scope, limits.channel_rps, "channel_rps", key))
        if limits.channel_daily:
            channel = f"{team}/{attempt.channel_id}"
            scope = _scope(self.channels, channel, daily=True)
            bounds.append((scope, limits.channel_daily, "channel", channel))
        return bounds

    def _refuse(self, over: list[tuple[_Bound, float]], now: float) -> GraphError:
        retry_after = max(1, math.ceil(max(wait for _, wait in over)))
        for (scope, _, _, _), _ in over:
            scope.throttled += 1
            scope.retry_until = max(scope.retry_until, now + retry_after)
        self.throttled += 1
        _, limit, kind, key = over[0][0]
        words = _LIMIT_WORDS[kind].format(key=_key_text(key))
        return GraphError(
            429,
            "TooManyRequests",
            f"Too many requests: the application exceeded its limit of {limit} {words}. "
            f"Retry after {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )

    def report(self) -> dict[str, object]:
        """``GET /_sim/throttle``."""
        now = max(self._clock(), self._last)
        limits = self.limits
        groups: tuple[tuple[str, dict[str, Scope] | dict[_ChannelKey, Scope], int], ...] = (
            ("app", self.apps, limits.app_rps),
            ("tenant", self.tenants, limits.tenant_rps),
            ("team", self.teams, limits.team_rps),
            ("channel_rps", self.channel_rates, limits.channel_rps),
            ("channel", self.channels, limits.channel_daily),
            *(
                (kind, self.operation_scopes[kind], getattr(self.operations, f"{kind}_rps"))
                for kind in OPERATION_KINDS
            ),
        )
        scopes: dict[str, object] = {}
        over_limit = 0
        for kind, found, limit in groups:
            for key, scope in found.items():
                scopes[f"{kind}:{_key_text(key)}"] = scope.to_json(limit, now)
                over_limit += scope.over_limit(limit, now)
        return {
            "limits": dataclasses.asdict(limits),
            "operation_limits": dataclasses.asdict(self.operations),
            "scopes": scopes,
            "totals": {
                "throttled": self.throttled,
                "retry_after_violations": self.violations,
                "max_window_over_limit": over_limit,
            },
        }
