"""The scheduler's safety nets (part of the delivery lifecycle: each moves deliveries in the
ledger, then in the gate): nothing stays lost when a worker or Redis is.

- Lease sweep: a delivery still ``sending`` after its lease ended lost its worker mid-POST;
  it becomes ``unknown`` (the post may exist), or is re-queued with THREADCAST_AMBIGUOUS=retry.
- Change sweep: an edit or a recall still running in the ledger, held by no runner, is
  announced to the gate again (Redis may have lost it).
- Orphan sweep: the ledger says ``queued``/``retrying`` but Redis no longer knows the
  delivery (flushed, restarted, failed over), released it long ago and no worker took it,
  or says it waits ("p") where nothing can wait (``Entrance.stuck``): it is put back in the
  gate. A duplicate is harmless, a worker claims a delivery once. Each
  run looks at a bounded page (``page`` deliveries, in chunks) and the next run goes on from
  where it stopped (a cursor on the delivery id, starting over after a full pass), so a run
  takes well under the scheduler's lease however many deliveries wait; between chunks it
  renews the lease, and stops if it was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Entrance
from threadcast.dispatch.changes import ChangeGate
from threadcast.ledger import Ledger

log = logging.getLogger("threadcast.sweeps")


@dataclass
class LeaseSweep:
    ledger: Ledger
    gate: Entrance
    retry_ambiguous: bool = False
    settled: int = 0  # in all runs

    def run(self, now: datetime) -> None:
        settled, again = self.ledger.deliveries.settle_expired_leases(
            now, retry=self.retry_ambiguous
        )
        if again:
            self.gate.enqueue(again, replace=True)
        if settled:
            log.warning(
                "%d deliveries lost their worker mid-attempt: %s",
                settled,
                "re-queued" if self.retry_ambiguous else "marked unknown",
            )
        self.settled += settled


def _always() -> bool:
    return True


@dataclass
class OrphanSweep:
    ledger: Ledger
    gate: Entrance
    grace: float = 60.0  # a delivery younger than this may still be on its way into Redis
    released_grace: float = 300.0  # released to Celery this long ago and still not taken
    page: int = 20_000  # deliveries looked at per run, at most
    chunk: int = 1_000  # deliveries per ledger read and Redis look-up
    keep_lease: Callable[[], bool] = _always  # renews the scheduler's lease; False: lost
    cursor: str = ""  # the last delivery id looked at; the next run goes on after it
    requeued: int = 0  # in all runs
    passes: int = 0  # full passes over the waiting deliveries completed

    def run(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self.grace)
        seen, requeued = 0, 0
        while seen < self.page:
            if not self.keep_lease():
                log.warning("orphan sweep: the scheduler lease was lost; stopping this run")
                break
            limit = min(self.chunk, self.page - seen)
            batch = self.ledger.deliveries.stale_waiting(cutoff, self.cursor, limit)
            if batch:
                lost = self._lost(batch, now)
                if lost:
                    requeued += self.gate.enqueue(lost, replace=True)
                self.cursor = batch[-1].delivery_id
                seen += len(batch)
            if len(batch) < limit:  # the end: the next run starts a new pass
                self.cursor = ""
                self.passes += 1
                break
        if requeued:
            log.warning("re-queued %d deliveries that Redis had lost", requeued)
        self.requeued += requeued

    def _lost(self, batch: list[DeliveryMessage], now: datetime) -> list[DeliveryMessage]:
        """Unknown to Redis, released long ago and never taken, or said to wait ("p") where
        nothing can be waiting (its queue, its team or its tenant gone: a Redis that lost
        some keys but not others, as a failover or an eviction can)."""
        horizon = now.timestamp() - self.released_grace
        where = self.gate.whereabouts([m.delivery_id for m in batch])
        lost = [
            m
            for m, w in zip(batch, where, strict=True)
            if w is None or (w.startswith("r") and float(w[1:]) < horizon)
        ]
        waiting = [m for m, w in zip(batch, where, strict=True) if w == "p"]
        stuck = set(self.gate.stuck(waiting)) if waiting else set()
        return lost + [m for m in waiting if m.delivery_id in stuck]


@dataclass
class ChangeSweep:
    """Edits and recalls still running in the ledger that no runner holds are announced to
    the gate again (a change Redis lost would otherwise never run); one the gate holds is
    left as it is."""

    ledger: Ledger
    gate: ChangeGate
    announced: int = 0  # in all runs

    def run(self, now: datetime) -> None:
        for change_id in self.ledger.changes.running(now):
            self.gate.announce(change_id, only_new=True)
            self.announced += 1
