"""The dispatch Lua scripts: package files, registered once per Redis client.

Each script is registered with ``clock.lua`` and ``common.lua`` in front of it: the one clock
(Redis's TIME) and the UTC date every script reads time through, and the helpers they share
(a broadcast's cancellation, giving a permit back). A Lua error's line number therefore
counts the prelude's lines too.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis

_NAMES = ("release", "promote", "park", "start", "cooldown", "enqueue", "drop", "cancel", "stuck")


def prelude() -> str:
    """clock.lua and common.lua: the functions every dispatch script may call (``redis_now``,
    ``utc_date``, ``broadcast_cancelled``, ``give_back``, ...)."""
    package = resources.files(__package__)
    return "\n".join(
        (package / name).read_text(encoding="utf-8") for name in ("clock.lua", "common.lua")
    )


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
