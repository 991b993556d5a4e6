"""The gate's part for edits and recalls: which changes are to run, and their permits.

A change (an edit or the recall of a broadcast, threadcast/ledger/changes.py) is announced
here when it is made (:meth:`ChangeGate.announce`): a zset of change ids, each with the time
a worker should run it. The leading dispatcher hands the due ones to the workers as Celery
tasks (:meth:`ChangeGate.due`), pushing their time on by :data:`RELAUNCH_SECONDS` so that one
whose worker died is handed out again; a runner moves it to when it needs to run again, and
takes it out once the change is done (:meth:`ChangeGate.finished`).

Each request a runner makes needs a permit (:meth:`ChangeGate.permit`, pace.lua) from the
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
from threadcast.dispatch.pacing import Pacer, Permit, Scope
from threadcast.dispatch.scripts import Scripts, run, text
from threadcast.guard import AdaptiveGuard

#: A change handed to a worker is handed out again after this long unless its runner moved it.
RELAUNCH_SECONDS = 60.0
#: A full scope among the first two (the app's or the tenant's edits) bounds every item of
#: the tenant: a runner skips the rest of it for the round.
TENANT_WIDE = frozenset({0, 1})


@dataclass(frozen=True)
class EditLimits:
    """Requests per window for edits and recalls (their own app and tenant limits)."""

    app: int
    tenant: int


class ChangeGate:
    def __init__(
        self,
        client: redis.Redis,
        limits: Limits,
        edits: EditLimits,
        guard: AdaptiveGuard | None = None,
    ) -> None:
        """``guard``: the windows' guard the posts use, widened by any 429 (a post's or an
        edit's); without it the windows are ``limits.window`` long."""
        self._redis = client
        self._limits = limits
        self._edits = edits
        self._guard = guard
        self._scripts = Scripts(client)
        self._pacer = Pacer(client, self._window)

    def _window(self) -> float:
        if self._guard is None:
            return self._limits.window
        return max(self._limits.window, self._guard.window())

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
        logs = _logs(tenant, team, channel)
        cools = _cooldowns(tenant, team, channel)
        limits = [self._edits.app, self._edits.tenant, rates.team, rates.channel]
        names = ["edits of the app", f"edits of tenant {tenant}", f"team {team}", "the channel"]
        # A tenant's edits spread their permits evenly: a runner has a whole window's worth
        # of a tenant's requests ready at once, which would go out as a burst. The app's are
        # not: the tenants' even flows add up smoothly, and spacing the app too would cap a
        # runner at one permit per spacing it wakes for (measured: 200 of 300/s).
        even = [False, True, False, False]
        scopes = [Scope(*fields) for fields in zip(names, logs, cools, limits, even, strict=True)]
        return self._pacer.take(scopes, permit_id)

    def cool_down(self, tenant: str, team: str, channel: str, seconds: float) -> str:
        """Graph answered an edit 429 with Retry-After: the fullest of its scopes waits, and
        the windows' guard widens (for posts and edits alike)."""
        if self._guard is not None:
            self._guard.throttled()
        rates = self._limits.for_tenant(tenant)
        scope = run(
            self._scripts.cooldown,
            keys=[*_cooldowns(tenant, team, channel), *_logs(tenant, team, channel)],
            args=[
                self._window(),
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
