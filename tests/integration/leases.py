"""Looking at a leader lease from outside, as the tests do (the code never needs to)."""

from __future__ import annotations

import redis


def current_holder(client: redis.Redis, key: str) -> str | None:
    """Who holds the lease now (None: nobody)."""
    value = client.get(key)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
