"""Permits for the requests that are not posts but count against Graph's limits all the same:
edits and recalls (threadcast/dispatch/changes.py) and audience reads (producer/audiences.py).

A request takes one permit from several scopes at once (pace.lua), each a sliding log of
request times on Redis's clock with its limit per window and its Retry-After cooldown, the
same kind of log the posts' permits are in: where Graph counts a request in a scope the
posts share (a team, a channel), it takes its permit from the posts' own log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from threadcast.dispatch.scripts import Scripts, run, text


@dataclass(frozen=True)
class Scope:
    name: str  # what a wait is blamed on, e.g. "edits of the tenant"
    log: str  # its sliding log's key (keys.py)
    cool: str  # its cooldown's key
    limit: int  # requests per window
    even: bool = False  # its permits one at most every window / limit seconds (pace.lua)


@dataclass(frozen=True)
class Permit:
    """``wait`` 0: go; else the seconds until its ``full`` scope (the index into the scopes
    asked for, and its name) may have room."""

    wait: float
    full: int | None = None
    name: str | None = None

    def __bool__(self) -> bool:
        return self.wait <= 0


class Pacer:
    def __init__(self, client: redis.Redis, window: Callable[[], float]) -> None:
        """``window``: the windows' length now (a second and the guard, which may widen)."""
        self._window = window
        self._scripts = Scripts(client)

    def take(self, scopes: Sequence[Scope], permit_id: str) -> Permit:
        """A permit from every scope, or none and how long to wait."""
        wait, index = run(
            self._scripts.pace,
            keys=[*(s.log for s in scopes), *(s.cool for s in scopes)],
            args=[
                self._window(),
                permit_id,
                *(s.limit for s in scopes),
                *(int(s.even) for s in scopes),
            ],
        )
        full = int(index)
        if not full:
            return Permit(0.0)
        return Permit(float(text(wait)), full - 1, scopes[full - 1].name)
