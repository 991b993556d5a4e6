"""The dispatch Lua scripts: package files, registered once per Redis client."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis

_NAMES = ("release", "promote", "park", "start", "cooldown")


class Scripts:
    """``scripts.release(keys=…, args=…)`` runs release.lua by EVALSHA (loading it if needed)."""

    def __init__(self, client: redis.Redis) -> None:
        package = resources.files(__package__)
        self._scripts = {
            name: client.register_script((package / f"{name}.lua").read_text(encoding="utf-8"))
            for name in _NAMES
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(name) from None
