"""The gate's keeper: lets deliveries out within every rate limit, and takes them back.

One dispatcher at a time releases waiting deliveries as Celery messages carrying a permit
(``release``, after ``promote`` brought back the due ones); a worker confirms its permit
right before the POST (``start``), puts a delivery back to wait for a retry, a Retry-After
or a quota (``park``), lets one go that it may not send (``drop``), and cools a throttled
scope down (``cool_down``). The other side is the entrance (threadcast/dispatch/entrance.py);
docs/RATE_LIMITS.md has the design.

One clock: every script takes "now" from the Redis server (``TIME``), never from its
caller, so hosts whose clocks disagree still share one sliding log per scope. Callers pass
durations (a delay, a Retry-After), not instants.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from threadcast.constants import QUEUE
from threadcast.contract import ContractError, DeliveryMessage
from threadcast.dispatch import keys
from threadcast.dispatch.limits import Limits
from threadcast.dispatch.scripts import Scripts, run, text
from threadcast.guard import AdaptiveGuard

_PERMIT_MAX_AGE = 0.5  # seconds a released permit may wait in the Celery queue
_DAY_TTL = 2 * 86_400  # seconds a day's quota hash outlives its last write


class Start(enum.Enum):
    """What :meth:`Keeper.start` says about a permit, right before the POST."""

    GO = "go"  # send now
    NO_ROOM = "no_room"  # a scope is full: no POST, park the delivery
    CANCELLED = "cancelled"  # its broadcast was cancelled: no POST, record it cancelled

    def __bool__(self) -> bool:
        return self is Start.GO


_STARTS = {1: Start.GO, 0: Start.NO_ROOM, 2: Start.CANCELLED}


@dataclass(frozen=True)
class Release:
    messages: list[DeliveryMessage]  # each with its permit
    held: list[DeliveryMessage]  # over their channel's daily quota: parked until midnight UTC
    # When something may next be released, on this host's clock (time.time()), so that the
    # caller sleeps ``next_wake - time.time()`` (None: nothing waits).
    next_wake: float | None
    parked: int  # deliveries waiting until a time (retries, Retry-After, quota holds, channels)
    at: float  # when the permits were issued, on Redis's clock (that of the entries' ready_at)
    # Entries this version cannot read (an unknown entry version, garbage), and why: they
    # left the gate; their deliveries stay in the ledger, where the orphan sweep finds them.
    unreadable: list[tuple[str, str]] = field(default_factory=list)


class Keeper:
    def __init__(
        self, client: redis.Redis, limits: Limits, guard: AdaptiveGuard | None = None
    ) -> None:
        """``guard``: the windows' guard widens on Graph's 429s (threadcast/guard.py);
        without it they are ``limits.window`` long."""
        self._redis = client
        self._limits = limits
        self._guard = guard
        self._scripts = Scripts(client)

    def _window(self) -> float:
        """The sliding windows' length now: a second plus the (adaptive) guard."""
        if self._guard is None:
            return self._limits.window
        return max(self._limits.window, self._guard.window())

    def throttled(self) -> None:
        """Graph answered 429: widen the windows' guard for every host (if adaptive)."""
        if self._guard is not None:
            self._guard.throttled()

    # -- workers -----------------------------------------------------------------------
    def start(self, message: DeliveryMessage) -> Start:
        """Confirm the permit right before sending (the delivery then leaves the gate) and
        count the send against its channel's daily quota. A missing or stale permit is
        replaced by a fresh one if every scope has room now. ``Start.NO_ROOM``: park the
        delivery; ``Start.CANCELLED``: its broadcast was cancelled, no POST may be made."""
        rates = self._limits.for_tenant(message.tenant)
        permit = message.permit or f"{message.delivery_id}@late"
        result = run(
            self._scripts.start,
            keys=[
                *_logs(message),
                keys.KNOWN,
                keys.CANCELLED,
                *_cooldowns(message),
                keys.STARTED,
                keys.permit_day(permit),
                *keys.days_around(time.time()),
            ],
            args=[
                permit,
                _PERMIT_MAX_AGE,
                message.delivery_id,
                self._window(),
                self._limits.app,
                rates.tenant,
                rates.team,
                rates.channel,
                message.broadcast_id,
                _where(message),
                rates.channel_daily,
                _DAY_TTL,
            ],
        )
        return _STARTS[int(result)]

    def park(self, message: DeliveryMessage, delay: float) -> bool:
        """Put a delivery back to wait ``delay`` seconds (0: at the front of its queue).

        A permit it carries that was never started (no POST made under it) is given back:
        its slot and its quota reservation are freed. A delivery of a cancelled broadcast is
        not parked: False."""
        return bool(
            run(
                self._scripts.park,
                keys=[
                    keys.DELAYED,
                    keys.TENANTS,
                    keys.KNOWN,
                    keys.queue(message.tenant, message.group),
                    keys.teams(message.tenant),
                    keys.WAKE,
                    keys.CANCELLED,
                    *_logs(message),
                    keys.permit_day(message.permit),
                ],
                # The script stamps the entry's ready time, on Redis's clock.
                args=[
                    message.entry(0.0),
                    max(0.0, delay),
                    message.tenant,
                    message.group,
                    message.delivery_id,
                    message.permit or "",
                    message.broadcast_id,
                    _where(message),
                ],
            )
        )

    def drop(self, message: DeliveryMessage) -> bool:
        """A released delivery that is not claimable (sent, cancelled, unknown, held by another
        claim) leaves the gate: no park; its permit, if never started, is given back (out of
        the sliding logs and its channel's quota reservation). True if one was given back."""
        if not message.permit:
            return False
        return bool(
            run(
                self._scripts.drop,
                keys=[*_logs(message), keys.KNOWN, keys.permit_day(message.permit)],
                args=[message.delivery_id, message.permit, _where(message)],
            )
        )

    def cool_down(self, message: DeliveryMessage, seconds: float, *, tenant_wide: bool) -> str:
        """Nobody sends into the scope Graph throttled until ``seconds`` pass; returns the
        scope charged (``app``, ``t:<tenant>``, ``g:<tenant>:<team>`` or
        ``c:<tenant>:<team>:<channel>``)."""
        rates = self._limits.for_tenant(message.tenant)
        t, g, c = message.tenant, message.group, message.channel
        scope = run(
            self._scripts.cooldown,
            keys=[*_cooldowns(message), *_logs(message)],
            args=[
                self._window(),
                self._limits.app,
                rates.tenant,
                rates.team,
                rates.channel,
                seconds,
                "tenant" if tenant_wide else "auto",
                keys.tenant_scope(t),
                keys.team_scope(t, g),
                keys.channel_scope(t, g, c),
            ],
        )
        return text(scope)

    def forget(self, delivery_id: str) -> None:
        """The delivery left the gate another way (e.g. it waits for a sign-in)."""
        run(self._redis.hdel, keys.KNOWN, delivery_id)

    # -- the dispatcher ----------------------------------------------------------------
    def write_limits(self) -> None:
        """Write the per-tenant overrides where the release script reads them."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.LIMITS)
        for tenant, values in self._limits.overrides_json().items():
            pipe.hset(keys.LIMITS, tenant, values)
        run(pipe.execute)

    def promote(self, limit: int = 1000) -> int:
        """Move due retries and holds back into their queues."""
        return int(
            run(
                self._scripts.promote,
                keys=[keys.DELAYED, keys.TENANTS, keys.KNOWN, keys.CANCELLED],
                args=[limit, keys.TEAMS, keys.QUEUE],
            )
        )

    def release(self, budget: int) -> Release:
        """Hand out up to ``budget`` permits, fairly across tenants and teams."""
        limits = self._limits
        released, held, wake, parked, issued = run(
            self._scripts.release,
            keys=[
                keys.TENANTS,
                keys.APP_LOG,
                keys.LIMITS,
                keys.CANCELLED,
                keys.KNOWN,
                keys.DELAYED,
                keys.APP_COOL,
            ],
            args=[
                self._window(),
                limits.app,
                limits.tenant,
                limits.team,
                limits.channel_daily,
                limits.channel,
                budget,
                _DAY_TTL,
                *keys.patterns(),
            ],
        )
        unreadable: list[tuple[str, str]] = []
        messages = _read(
            ((released[i], text(released[i + 1])) for i in range(0, len(released), 2)),
            unreadable,
        )
        held_messages = _read(((e, None) for e in held), unreadable)
        at = float(issued)
        # The wake time is on Redis's clock; the caller sleeps on its own.
        next_wake = time.time() + (float(wake) - at) if wake else None
        return Release(messages, held_messages, next_wake, int(parked), at, unreadable)

    def wait(self, timeout: float) -> bool:
        """Sleep until woken (new work) or ``timeout`` seconds pass; True if woken.

        Redis ends a blocking wait on its own clock tick: up to 1/hz late (100 ms at the
        default hz 10), so callers that need to be on time wait the last stretch themselves
        (:meth:`woken`)."""
        if timeout <= 0:
            return False
        return run(self._redis.blpop, [keys.WAKE], timeout=max(0.01, timeout)) is not None

    def woken(self) -> bool:
        """Whether new work was announced since the last look (without waiting)."""
        return run(self._redis.lpop, keys.WAKE) is not None

    def backlog(self) -> int:
        """Messages released to Celery and not yet taken by a worker."""
        return int(run(self._redis.llen, QUEUE))


def _read(
    entries: Iterable[tuple[Any, str | None]], unreadable: list[tuple[str, str]]
) -> list[DeliveryMessage]:
    """The entries as messages; one this version cannot read goes to ``unreadable``."""
    read: list[DeliveryMessage] = []
    for entry, permit in entries:
        try:
            read.append(DeliveryMessage.from_entry(entry, permit))
        except ContractError as exc:
            unreadable.append((text(entry), str(exc)))
    return read


def _logs(message: DeliveryMessage) -> list[str]:
    """The sliding logs a permit of this delivery is in: app, tenant, team, channel."""
    t, g, c = message.tenant, message.group, message.channel
    return [keys.APP_LOG, keys.tenant_log(t), keys.team_log(t, g), keys.channel_log(t, g, c)]


def _cooldowns(message: DeliveryMessage) -> list[str]:
    """The cooldowns of the same scopes, in the same order."""
    t, g, c = message.tenant, message.group, message.channel
    return [
        keys.APP_COOL,
        keys.cooldown(keys.tenant_scope(t)),
        keys.cooldown(keys.team_scope(t, g)),
        keys.cooldown(keys.channel_scope(t, g, c)),
    ]


def _where(message: DeliveryMessage) -> str:
    """The channel's field in the day's quota hash."""
    return f"{message.tenant}:{message.group}:{message.channel}"
