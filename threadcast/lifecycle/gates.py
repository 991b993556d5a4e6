"""Where the gate's two parts are made: producer, scheduler and worker ask here, never build
an ``Entrance`` or a ``Keeper`` themselves.

The entrance (putting deliveries in, asking where they are) needs no limits; the keeper
(releasing, confirming permits, parking, cooling scopes down) needs the deployment's limits
and the adaptive guard.
"""

from __future__ import annotations

import redis

from threadcast.dispatch import Entrance, Keeper, Limits
from threadcast.dispatch.changes import ChangeGate, EditLimits
from threadcast.dispatch.pacing import Pacer
from threadcast.guard import AdaptiveGuard
from threadcast.settings import Settings


def entrance(client: redis.Redis) -> Entrance:
    """The producer's and the sweeps' side of the gate."""
    return Entrance(client)


def keeper(client: redis.Redis, settings: Settings, limits: Limits | None = None) -> Keeper:
    """The worker's and the dispatcher's side: the deployment's limits, windows that widen
    on Graph's 429s (threadcast/guard.py)."""
    return Keeper(
        client,
        limits or Limits.from_settings(settings),
        guard=AdaptiveGuard(client, settings.limit_guard_ms),
    )


def changes(client: redis.Redis, settings: Settings) -> ChangeGate:
    """Edits and recalls: which changes run, and their permits (the edits' own limits, the
    teams' and channels' shared with the posts)."""
    edits = EditLimits(settings.edit_app_rps, settings.edit_tenant_rps)
    guard = AdaptiveGuard(client, settings.limit_guard_ms)
    return ChangeGate(client, Limits.from_settings(settings), edits, guard)


def pacer(client: redis.Redis, settings: Settings) -> Pacer:
    """Permits for audience reads (their own Graph limits, and the teams' shared with the
    posts)."""
    guard = AdaptiveGuard(client, settings.limit_guard_ms)
    return Pacer(client, lambda: guard.window())
