"""The gate every delivery passes: it waits in Redis until the rate limits let it go.

Producers put deliveries in (``enqueue``); one dispatcher at a time lets them out as Celery
messages carrying a permit (``release``); a worker confirms its permit right before the
POST (``start``), and puts a delivery back to wait for a retry, a Retry-After or a quota
(``park``). See docs/RATE_LIMITS.md for the design.

One clock: every script takes "now" from the Redis server (``TIME``), never from its
caller, so hosts whose clocks disagree still share one sliding log per scope. Callers pass
durations (a delay, a Retry-After), not instants.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import redis

from threadcast.constants import QUEUE
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import keys
from threadcast.dispatch.limits import Limits
from threadcast.dispatch.scripts import Scripts
from threadcast.errors import BrokerError
from threadcast.guard import AdaptiveGuard

_CHUNK = 10_000  # deliveries per enqueue script call
_PERMIT_MAX_AGE = 0.5  # seconds a released permit may wait in the Celery queue
_DAY_TTL = 2 * 86_400  # seconds a day's quota hash outlives its last write
#: How long a broadcast's cancellation stays marked in the gate: every entry of it leaves long
#: before (a quota hold waits until midnight at most, a retry minutes).
CANCEL_MARK_SECONDS = 3 * 86_400
_STUCK_PAGE = 1000  # deliveries per stuck.lua call
_T = TypeVar("_T")


class Start(enum.Enum):
    """What :meth:`Gate.start` says about a permit, right before the POST."""

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


class Gate:
    def __init__(
        self,
        client: redis.Redis,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        guard: AdaptiveGuard | None = None,
    ) -> None:
        """``limits`` is needed by the dispatcher, to start and for cooldowns, not to enqueue or
        park. ``clock`` stamps enqueued deliveries (their queue score and ready time) instead
        of Redis's clock, for tests; no rate-limit decision ever reads it. ``guard``: the
        windows' guard widens on Graph's 429s (threadcast/guard.py); without it they are
        ``limits.window`` long."""
        self._redis = client
        self._limits_or_none = limits
        self._clock = clock
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

    @property
    def _limits(self) -> Limits:
        if self._limits_or_none is None:
            raise TypeError("this Gate was made without Limits")
        return self._limits_or_none

    # -- producers ---------------------------------------------------------------------
    def enqueue(self, messages: Iterable[DeliveryMessage], *, replace: bool = False) -> int:
        """Put deliveries in to wait for their turn; returns how many went in.

        One entry per delivery: a delivery the gate already holds (waiting, delayed or
        released) is skipped, so a re-send or a retry published twice costs no second permit
        and no second quota count. ``replace`` puts it in whatever the gate says: for the
        sweeps, which re-queue a delivery Redis lost or released long ago and no worker took.

        Each chunk is one script call (enqueue.lua, atomic): one RPUSH per team queue (its
        entries in the order given), one ZADD NX per team and per tenant, and an HSETNX per
        delivery."""
        count, iterator = 0, iter(messages)
        flag = "1" if replace else "0"
        step = 3 if replace else 2
        while chunk := list(islice(iterator, _CHUNK)):
            now = self._enqueue_time()
            queues: dict[tuple[str, str], list[str]] = {}
            for m in chunk:
                entries = queues.get((m.tenant, m.group))
                if entries is None:
                    entries = queues[(m.tenant, m.group)] = []
                if replace:
                    entries += (m.delivery_id, m.channel, m.entry(now))
                else:
                    entries += (m.delivery_id, m.entry(now))
            args: list[object] = [repr(now), flag, keys.PREFIX]
            for (tenant, group), entries in queues.items():
                args += (tenant, group, len(entries) // step)
                args += entries
            count += int(
                _run(
                    self._scripts.enqueue,
                    keys=[keys.TENANTS, keys.KNOWN, keys.WAKE, keys.STARTED],
                    args=args,
                )
            )
        return count

    def _enqueue_time(self) -> float:
        # Redis's clock by default: the scripts compare these scores with their own "now", and
        # a producer whose clock ran ahead would hold its deliveries back by as much.
        if self._clock is not None:
            return self._clock()
        seconds, micros = _run(self._redis.time)
        return float(seconds) + micros / 1_000_000

    def wake(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(keys.WAKE, "1")
        pipe.ltrim(keys.WAKE, 0, 0)
        _run(pipe.execute)

    # -- workers -----------------------------------------------------------------------
    def start(self, message: DeliveryMessage) -> Start:
        """Confirm the permit right before sending (the delivery then leaves the gate) and
        count the send against its channel's daily quota. A missing or stale permit is
        replaced by a fresh one if every scope has room now. ``Start.NO_ROOM``: park the
        delivery; ``Start.CANCELLED``: its broadcast was cancelled, no POST may be made."""
        rates = self._limits.for_tenant(message.tenant)
        t, g, c = message.tenant, message.group, message.channel
        result = _run(
            self._scripts.start,
            keys=[
                *_logs(message),
                keys.KNOWN,
                keys.CANCELLED,
                keys.cooldown("app"),
                keys.cooldown(keys.tenant_scope(t)),
                keys.cooldown(keys.team_scope(t, g)),
                keys.cooldown(keys.channel_scope(t, g, c)),
                keys.STARTED,
            ],
            args=[
                message.permit or f"{message.delivery_id}@late",
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
                keys.PREFIX,
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
            _run(
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
                    keys.PREFIX,
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
            _run(
                self._scripts.drop,
                keys=[*_logs(message), keys.KNOWN],
                args=[message.delivery_id, message.permit, _where(message), keys.PREFIX],
            )
        )

    def cancel(self, broadcast_id: str) -> None:
        """Mark the broadcast cancelled (for CANCEL_MARK_SECONDS): its waiting entries leave
        without a permit or a quota count as the release and promotion reach them, and a
        worker that claimed one of its deliveries before the cancel gets no permit for it."""
        _run(
            self._scripts.cancel,
            keys=[keys.CANCELLED, keys.WAKE],
            args=[broadcast_id, CANCEL_MARK_SECONDS],
        )

    def uncancel(self, broadcast_id: str) -> None:
        """Remove the broadcast's cancellation mark (an operator re-queues its deliveries)."""
        _run(self._scripts.cancel, keys=[keys.CANCELLED, keys.WAKE], args=[broadcast_id, 0])

    def cool_down(self, message: DeliveryMessage, seconds: float, *, tenant_wide: bool) -> str:
        """Nobody sends into the scope Graph throttled until ``seconds`` pass; returns the
        scope charged (``app``, ``t:<tenant>``, ``g:<tenant>:<team>`` or
        ``c:<tenant>:<team>:<channel>``)."""
        rates = self._limits.for_tenant(message.tenant)
        t, g, c = message.tenant, message.group, message.channel
        scope = _run(
            self._scripts.cooldown,
            keys=[
                keys.cooldown("app"),
                keys.cooldown(keys.tenant_scope(t)),
                keys.cooldown(keys.team_scope(t, g)),
                keys.cooldown(keys.channel_scope(t, g, c)),
                *_logs(message),
            ],
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
        return scope.decode() if isinstance(scope, bytes) else str(scope)

    def forget(self, delivery_id: str) -> None:
        """The delivery left the gate another way (e.g. it waits for a sign-in)."""
        _run(self._redis.hdel, keys.KNOWN, delivery_id)

    # -- the dispatcher ----------------------------------------------------------------
    def write_limits(self) -> None:
        """Write the per-tenant overrides where the release script reads them."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.LIMITS)
        for tenant, values in self._limits.overrides_json().items():
            pipe.hset(keys.LIMITS, tenant, values)
        _run(pipe.execute)

    def promote(self, limit: int = 1000) -> int:
        """Move due retries and holds back into their queues."""
        return int(
            _run(
                self._scripts.promote,
                keys=[keys.DELAYED, keys.TENANTS, keys.KNOWN, keys.CANCELLED],
                args=[limit, keys.PREFIX],
            )
        )

    def release(self, budget: int) -> Release:
        """Hand out up to ``budget`` permits, fairly across tenants and teams."""
        limits = self._limits
        released, held, wake, parked, issued = _run(
            self._scripts.release,
            keys=[
                keys.TENANTS,
                keys.APP_LOG,
                keys.LIMITS,
                keys.CANCELLED,
                keys.KNOWN,
                keys.DELAYED,
            ],
            args=[
                self._window(),
                limits.app,
                limits.tenant,
                limits.team,
                limits.channel_daily,
                limits.channel,
                budget,
                keys.PREFIX,
                _DAY_TTL,
            ],
        )
        messages = [
            DeliveryMessage.from_entry(released[i], _text(released[i + 1]))
            for i in range(0, len(released), 2)
        ]
        held_messages = [DeliveryMessage.from_entry(e) for e in held]
        at = float(issued)
        # The wake time is on Redis's clock; the caller sleeps on its own.
        next_wake = time.time() + (float(wake) - at) if wake else None
        return Release(messages, held_messages, next_wake, int(parked), at)

    def wait(self, timeout: float) -> bool:
        """Sleep until woken (new work) or ``timeout`` seconds pass; True if woken.

        Redis ends a blocking wait on its own clock tick: up to 1/hz late (100 ms at the
        default hz 10), so callers that need to be on time wait the last stretch themselves
        (:meth:`woken`)."""
        if timeout <= 0:
            return False
        return _run(self._redis.blpop, [keys.WAKE], timeout=max(0.01, timeout)) is not None

    def woken(self) -> bool:
        """Whether new work was announced since the last look (without waiting)."""
        return _run(self._redis.lpop, keys.WAKE) is not None

    def backlog(self) -> int:
        """Messages released to Celery and not yet taken by a worker."""
        return int(_run(self._redis.llen, QUEUE))

    # -- the sweeper -------------------------------------------------------------------
    def whereabouts(self, delivery_ids: Sequence[str]) -> list[str | None]:
        """For each delivery: "p" (waiting: in its queue or delayed), "r<time>" (released at,
        Redis's clock), None (unknown here)."""
        if not delivery_ids:
            return []
        found = _run(self._redis.hmget, keys.KNOWN, list(delivery_ids))
        return [None if v is None else _waiting(_text(v)) for v in found]

    def stuck(self, messages: Sequence[DeliveryMessage]) -> list[str]:
        """The ids of the deliveries the gate says are waiting ("p" in :meth:`whereabouts`)
        that cannot be waiting anywhere: their team's queue, their team in the tenant's
        teams, or their tenant is gone (queued), or no delayed entry has their due time
        (delayed). For the orphan sweep, which re-queues them with ``replace``. Takes the
        messages (the ledger's ``stale_waiting`` gives them) because the check needs each
        delivery's tenant and team; one bounded script call per 1,000 deliveries."""
        stuck: list[str] = []
        for start in range(0, len(messages), _STUCK_PAGE):
            args: list[str] = [keys.PREFIX]
            for m in messages[start : start + _STUCK_PAGE]:
                args += (m.delivery_id, m.tenant, m.group)
            found = _run(
                self._scripts.stuck, keys=[keys.KNOWN, keys.TENANTS, keys.DELAYED], args=args
            )
            stuck += [_text(d) for d in found]
        return stuck


def _logs(message: DeliveryMessage) -> list[str]:
    """The sliding logs a permit of this delivery is in: app, tenant, team, channel."""
    t, g, c = message.tenant, message.group, message.channel
    return [keys.APP_LOG, keys.tenant_log(t), keys.team_log(t, g), keys.channel_log(t, g, c)]


def _where(message: DeliveryMessage) -> str:
    """The channel's field in the day's quota hash."""
    return f"{message.tenant}:{message.group}:{message.channel}"


def _waiting(known: str) -> str:
    return "p" if known.startswith("d") else known


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _run(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    try:
        return call(*args, **kwargs)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerError(
            f"Redis is unreachable ({type(exc).__name__}): check THREADCAST_REDIS_URL; "
            "deliveries stay in the ledger and will be re-queued"
        ) from exc
    except redis.RedisError as exc:
        raise BrokerError(f"Redis refused a dispatch command: {exc}") from exc
