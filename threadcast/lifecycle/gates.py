"""Where the gates are made: producer, scheduler and worker ask here, never build a ``Gate``.

A gate without limits enqueues, wakes and tells whereabouts (the producer's and the sweeps');
the worker's also releases, confirms permits, parks and cools scopes down, so it needs the
limits and the adaptive guard.
"""

from __future__ import annotations

import redis

from threadcast.dispatch import Gate, Limits
from threadcast.guard import AdaptiveGuard
from threadcast.settings import Settings


def entrance(client: redis.Redis) -> Gate:
    """A gate for putting deliveries in and asking where they are (no limits needed)."""
    return Gate(client)


def keeper(client: redis.Redis, settings: Settings, limits: Limits | None = None) -> Gate:
    """The worker's and the dispatcher's gate: the deployment's limits, windows that widen
    on Graph's 429s (threadcast/guard.py)."""
    return Gate(
        client,
        limits or Limits.from_settings(settings),
        guard=AdaptiveGuard(client, settings.limit_guard_ms),
    )
