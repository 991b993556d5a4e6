"""The gate's Lua scripts (package files), registered once per Redis client, and how they
are called.

Each script is registered with the libraries in front of it: ``clock.lua`` (the one clock,
Redis's TIME, and the UTC date), ``marks.lua`` (a broadcast's cancellation), ``permits.lua``
(giving a permit back), ``scopes.lua`` (is this scope full?) and ``quota.lua`` (the
channels' daily quota). They only define functions; a Lua error's line number counts their
lines too.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import redis

from threadcast.errors import BrokerError

_LIBRARIES = ("clock", "marks", "permits", "scopes", "quota")
_NAMES = (
    "release",
    "promote",
    "park",
    "start",
    "cooldown",
    "enqueue",
    "drop",
    "cancel",
    "stuck",
    "pace",
)
_T = TypeVar("_T")


def prelude() -> str:
    """The libraries every gate script may call (``redis_now``, ``utc_date``,
    ``broadcast_cancelled``, ``give_back``, ``room_at``, ``quota_state``, ...)."""
    package = resources.files(__package__)
    return "\n".join((package / f"{name}.lua").read_text(encoding="utf-8") for name in _LIBRARIES)


class Scripts:
    """``scripts.release(keys=…, args=…)`` runs release.lua by EVALSHA (loading it if needed)."""

    def __init__(self, client: redis.Redis) -> None:
        package = resources.files(__package__)
        shared = prelude()
        self._scripts = {
            name: client.register_script(
                shared + "\n" + (package / f"{name}.lua").read_text(encoding="utf-8")
            )
            for name in _NAMES
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(name) from None


def run(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """One Redis call; what goes wrong is a BrokerError saying what to check."""
    try:
        return call(*args, **kwargs)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerError(
            f"Redis is unreachable ({type(exc).__name__}): check THREADCAST_REDIS_URL; "
            "deliveries stay in the ledger and will be re-queued"
        ) from exc
    except redis.RedisError as exc:
        raise BrokerError(f"Redis refused a dispatch command: {exc}") from exc


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
