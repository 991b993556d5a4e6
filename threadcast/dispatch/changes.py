"""The gate's part for edits and recalls: which changes are to run, and their permits.

A change (an edit or the recall of a broadcast, threadcast/ledger/changes.py) is announced
here when it is made (:meth:`ChangeGate.announce`): a zset of change ids, each with the time
a worker should run it. The leading dispatcher hands the due ones to the workers as Celery
tasks (:meth:`ChangeGate.due`), pushing their time on by :data:`RELAUNCH_SECONDS` so that one
whose worker died is handed out again; a runner moves it to when it needs to run again, and
takes it out once the change is done (:meth:`ChangeGate.finished`).

Each request a runner makes needs a permit (:meth:`ChangeGate.permit`, change.lua) from the
edits' own limits (per app, per tenant) and from the team's and channel's per-second logs the
posts' permits are in; a 429 on an edit cools the fullest of those scopes down (cooldown.lua,
as for a post).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from threadcast.dispatch import keys
from threadcast.dispatch.limits import Limits
from threadcast.dispatch.scripts import Scripts, run, text

#: A change handed to a worker is handed out again after this long unless its runner moved it.
RELAUNCH_SECONDS = 60.0
_SCOPES = ("edits of the app", "edits of the tenant", "the team", "the channel")


@dataclass(frozen=True)
class EditLimits:
    """Requests per window for edits and recalls (their own app and tenant limits)."""

    app: int
    tenant: int


@dataclass(frozen=True)
class Permit:
    """A permit's answer: ``wait`` 0 (go) or the seconds until its ``full`` scope may
    have room."""

    wait: float
    full: str | None

    def __bool__(self) -> bool:
        return self.wait <= 0

    @property
    def tenant_wide(self) -> bool:
        """The full scope bounds every item of the tenant (or the app): skip them too."""
        return self.full in _SCOPES[:2]


class ChangeGate:
    def __init__(self, client: redis.Redis, limits: Limits, edits: EditLimits) -> None:
        self._redis = client
        self._limits = limits
        self._edits = edits
        self._scripts = Scripts(client)

    # -- which changes run ---------------------------------------------------------------------
    def announce(self, change_id: str, at: float | None = None, *, only_new: bool = False) -> None:
        """Have a worker run the change at ``at`` (epoch seconds; now if None), and wake the
        dispatcher. ``only_new``: leave a change the gate already holds as it is."""
        when = time.time() if at is None else at
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(keys.CHANGES, {change_id: when}, nx=only_new)
        pipe.lpush(keys.WAKE, "change")
        pipe.ltrim(keys.WAKE, 0, 0)
        run(pipe.execute)

    def due(self, limit: int = 20) -> list[str]:
        """The changes due now, each pushed on by RELAUNCH_SECONDS (the dispatcher hands them
        out; one dispatcher leads at a time)."""
        now = time.time()
        found = run(self._redis.zrangebyscore, keys.CHANGES, "-inf", now, start=0, num=limit)
        ids = [text(change) for change in found]
        if ids:
            run(self._redis.zadd, keys.CHANGES, dict.fromkeys(ids, now + RELAUNCH_SECONDS), xx=True)
        return ids

    def finished(self, change_id: str) -> None:
        run(self._redis.zrem, keys.CHANGES, change_id)

    def waiting(self) -> int:
        return int(run(self._redis.zcard, keys.CHANGES))

    # -- permits -----------------------------------------------------------------------------
    def permit(self, tenant: str, team: str, channel: str, permit_id: str) -> Permit:
        rates = self._limits.for_tenant(tenant)
        wait, scope = run(
            self._scripts.change,
            keys=[*_logs(tenant, team, channel), *_cooldowns(tenant, team, channel)],
            args=[
                self._limits.window,
                self._edits.app,
                self._edits.tenant,
                rates.team,
                rates.channel,
                permit_id,
            ],
        )
        index = int(scope)
        return Permit(float(text(wait)), _SCOPES[index - 1] if index else None)

    def cool_down(self, tenant: str, team: str, channel: str, seconds: float) -> str:
        """Graph answered an edit 429 with Retry-After: the fullest of its scopes waits."""
        rates = self._limits.for_tenant(tenant)
        scope = run(
            self._scripts.cooldown,
            keys=[*_cooldowns(tenant, team, channel), *_logs(tenant, team, channel)],
            args=[
                self._limits.window,
                self._edits.app,
                self._edits.tenant,
                rates.team,
                rates.channel,
                seconds,
                "auto",
                f"edit:{keys.tenant_scope(tenant)}",
                keys.team_scope(tenant, team),
                keys.channel_scope(tenant, team, channel),
            ],
        )
        return text(scope)


def _logs(tenant: str, team: str, channel: str) -> list[str]:
    return [
        keys.EDIT_APP_LOG,
        keys.edit_tenant_log(tenant),
        keys.team_log(tenant, team),
        keys.channel_log(tenant, team, channel),
    ]


def _cooldowns(tenant: str, team: str, channel: str) -> list[str]:
    return [
        keys.EDIT_APP_COOL,
        keys.edit_tenant_cool(tenant),
        keys.cooldown(keys.team_scope(tenant, team)),
        keys.cooldown(keys.channel_scope(tenant, team, channel)),
    ]
