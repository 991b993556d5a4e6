"""The gate's entrance: where producers put deliveries in and ask where they are.

Deliveries go in (``enqueue``) as gate entries (contract.DeliveryMessage.entry, versioned:
the real producer-to-worker boundary), one per delivery, and wake the dispatcher. A
broadcast's cancellation is marked here (``cancel``) for the keeper to honour. The sweeps ask
where deliveries are (``whereabouts``, ``stuck``) to repair what Redis lost. The other side
is the keeper (threadcast/dispatch/keeper.py); docs/RATE_LIMITS.md has the design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice

import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import keys
from threadcast.dispatch.scripts import Scripts, run, text

_CHUNK = 10_000  # deliveries per enqueue script call
#: How long a broadcast's cancellation stays marked in the gate: every entry of it leaves long
#: before (a quota hold waits until midnight at most, a retry minutes).
CANCEL_MARK_SECONDS = 3 * 86_400
_STUCK_PAGE = 1000  # deliveries per stuck.lua call


class Entrance:
    def __init__(self, client: redis.Redis, clock: Callable[[], float] | None = None) -> None:
        """``clock`` stamps enqueued deliveries (their queue score and ready time) instead of
        Redis's clock, for tests; no rate-limit decision ever reads it."""
        self._redis = client
        self._clock = clock
        self._scripts = Scripts(client)

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
            names = [keys.TENANTS, keys.KNOWN, keys.WAKE, keys.STARTED]
            args: list[object] = [repr(now), flag, keys.DAY]
            for (tenant, group), entries in queues.items():
                names += (keys.queue(tenant, group), keys.teams(tenant))
                args += (tenant, group, len(entries) // step)
                args += entries
            count += int(run(self._scripts.enqueue, keys=names, args=args))
        return count

    def _enqueue_time(self) -> float:
        # Redis's clock by default: the scripts compare these scores with their own "now", and
        # a producer whose clock ran ahead would hold its deliveries back by as much.
        if self._clock is not None:
            return self._clock()
        seconds, micros = run(self._redis.time)
        return float(seconds) + micros / 1_000_000

    def wake(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(keys.WAKE, "1")
        pipe.ltrim(keys.WAKE, 0, 0)
        run(pipe.execute)

    def cancel(self, broadcast_id: str) -> None:
        """Mark the broadcast cancelled (for CANCEL_MARK_SECONDS): its waiting entries leave
        without a permit or a quota count as the release and promotion reach them, and a
        worker that claimed one of its deliveries before the cancel gets no permit for it."""
        run(
            self._scripts.cancel,
            keys=[keys.CANCELLED, keys.WAKE],
            args=[broadcast_id, CANCEL_MARK_SECONDS],
        )

    def uncancel(self, broadcast_id: str) -> None:
        """Remove the broadcast's cancellation mark (an operator re-queues its deliveries)."""
        run(self._scripts.cancel, keys=[keys.CANCELLED, keys.WAKE], args=[broadcast_id, 0])

    def whereabouts(self, delivery_ids: Sequence[str]) -> list[str | None]:
        """For each delivery: "p" (waiting: in its queue or delayed), "r<time>" (released at,
        Redis's clock), None (unknown here)."""
        if not delivery_ids:
            return []
        found = run(self._redis.hmget, keys.KNOWN, list(delivery_ids))
        return [None if v is None else _waiting(text(v)) for v in found]

    def stuck(self, messages: Sequence[DeliveryMessage]) -> list[str]:
        """The ids of the deliveries the gate says are waiting ("p" in :meth:`whereabouts`)
        that cannot be waiting anywhere: their team's queue, their team in the tenant's
        teams, or their tenant is gone (queued), or no delayed entry has their due time
        (delayed). For the orphan sweep, which re-queues them with ``replace``. Takes the
        messages (the ledger's ``stale_waiting`` gives them) because the check needs each
        delivery's tenant and team; one bounded script call per 1,000 deliveries."""
        stuck: list[str] = []
        for start in range(0, len(messages), _STUCK_PAGE):
            names = [keys.KNOWN, keys.TENANTS, keys.DELAYED]
            args: list[str] = []
            for m in messages[start : start + _STUCK_PAGE]:
                names += (keys.queue(m.tenant, m.group), keys.teams(m.tenant))
                args += (m.delivery_id, m.tenant, m.group)
            found = run(self._scripts.stuck, keys=names, args=args)
            stuck += [text(d) for d in found]
        return stuck


def _waiting(known: str) -> str:
    return "p" if known.startswith("d") else known
