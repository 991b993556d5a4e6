"""The producer's side of a delivery's life: every step that writes the ledger and then the
gate, in that order (the ledger is the truth; what a crash leaves out of the gate, the
sweeps put back).

- accept: a broadcast and one delivery per distinct target recorded in one transaction,
  then published into the gate (unless it waits for its send time);
- send due: a scheduled broadcast whose send time came: its deliveries ``scheduled`` →
  ``queued``, then published (the scheduler);
- cancel: the ledger's deliveries ``cancelled``, then the gate's mark;
- retry: an operator re-queues settled deliveries (``failed``, ``unknown``, ``cancelled``,
  ``waiting_auth``) with a fresh budget, then publishes them over whatever the gate said;
- resume: a tenant signed in again, its ``waiting_auth`` deliveries ``queued`` and published.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from threadcast import ids
from threadcast.contract import Broadcast, Delivery, DeliveryMessage, Target
from threadcast.errors import BrokerError, ValidationError
from threadcast.ledger import DeliveryState, Ledger
from threadcast.ledger.launches import LaunchState
from threadcast.lifecycle.publisher import Publisher

log = logging.getLogger("threadcast.producer")

_KEEP = 10_000  # deliveries of a broadcast published from memory after its commit, at most


@dataclass(frozen=True)
class Accepted:
    deliveries: int  # distinct targets
    created: bool  # False: this broadcast id was recorded before (nothing new written)
    published: int  # deliveries put into the gate now
    scheduled: bool  # waiting for its send time


class Intake:
    """The producer's, the API's and the scheduler's way into a delivery's life."""

    def __init__(self, ledger: Ledger, publisher: Publisher) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._gate = publisher.gate

    def accept(self, broadcast: Broadcast, targets: Iterable[Target], now: datetime) -> Accepted:
        """Record the broadcast and one delivery per distinct target (in the order given) in
        one transaction, then publish them unless it waits for its send time. A broadcast id
        recorded before writes nothing new and publishes its deliveries still ``queued``
        (duplicates are harmless: the gate skips what it holds, a delivery is claimed once).
        ``targets`` is read once, a target at a time, inside the transaction.

        The broadcast's message (content, its parts, whether it is personal) is stored once,
        on its row; a personal broadcast's deliveries each keep their target's variables
        (``Target.variables``; the first of targets naming the same channel), which the
        worker fills the content in with."""
        small = _Small()
        batch = _distinct(broadcast.id, targets, small)
        recorded = self._ledger.broadcasts.record(broadcast, batch, now)
        scheduled = broadcast.send_at is not None and broadcast.send_at > now
        messages: Iterable[DeliveryMessage] = ()
        if not recorded.created:
            messages = self._ledger.broadcasts.queued_messages(broadcast.id)
        elif not scheduled:
            messages = self._committed(broadcast.id, small)
        published = self._publisher.publish(messages)
        return Accepted(recorded.deliveries, recorded.created, published, scheduled)

    def _committed(self, broadcast_id: str, small: _Small) -> Iterable[DeliveryMessage]:
        """A broadcast just committed, all its deliveries ``queued``: published only now (what
        a crash before or during publishing leaves out, the orphan sweep puts in the gate
        later), from memory when it is small, else read back a page at a time."""
        if small.messages is not None:
            return small.messages
        return self._ledger.broadcasts.queued_messages(broadcast_id)

    def send_due(
        self, broadcast_id: str, send_at: datetime, state: LaunchState, now: datetime
    ) -> int:
        """A scheduled broadcast's send time came: its ``scheduled`` deliveries become
        ``queued`` (one transaction; the ledger's launch row records it). They are
        published by :meth:`publish_due`, also after a crash in between. Returns how many."""
        return self._ledger.launches.launch(broadcast_id, send_at, state, now)

    def publish_due(self, now: datetime) -> list[tuple[str, int]]:
        """Publish every due broadcast not yet confirmed published; (broadcast, count) each."""
        done: list[tuple[str, int]] = []
        for broadcast_id in self._ledger.launches.unpublished():
            count = self._publisher.publish(self._ledger.broadcasts.queued_messages(broadcast_id))
            self._ledger.launches.mark_published(broadcast_id, now)
            done.append((broadcast_id, count))
        return done

    def cancel(self, broadcast_id: str, now: datetime) -> int:
        """Cancel every delivery not yet sent; returns how many. The ledger refuses every later
        claim; the gate's mark (written before returning) also stops a delivery claimed just
        before the cancel from starting its POST. With Redis unreachable the ledger's cancel
        still holds (docs/RELIABILITY.md)."""
        count = self._ledger.broadcasts.cancel(broadcast_id, now)
        try:
            self._gate.cancel(broadcast_id)
        except BrokerError as exc:
            log.warning(
                "broadcast %s is cancelled in the ledger, but the gate could not be told "
                "(%s): a delivery claimed just before the cancel may still be posted",
                broadcast_id,
                exc,
            )
        return count

    def retry(
        self,
        broadcast_id: str,
        states: Sequence[DeliveryState],
        now: datetime,
        *,
        error_code: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Re-queue the broadcast's settled deliveries in ``states`` with a fresh retry budget
        and publish them; returns how many."""
        if DeliveryState.CANCELLED in states:
            # Before the ledger lifts the cancellation, so that nothing re-queued meets the
            # gate's mark (and is dropped); a failure here changes nothing in the ledger.
            self._gate.uncancel(broadcast_id)
        messages = self._ledger.broadcasts.requeue(
            broadcast_id, states, now, error_code=error_code, tenant=tenant
        )
        # Settled deliveries: a gate entry left from before (a worker killed between its
        # claim and its permit) is stale, not a reason to skip them.
        self._publisher.publish(messages, replace=True)
        return len(messages)

    def resume(self, tenant: str, now: datetime) -> int:
        """The tenant signed in again: its ``waiting_auth`` deliveries are ``queued`` and
        published (they had left the gate); returns how many went in."""
        waiting = self._ledger.deliveries.resume_waiting(tenant, now)
        return self._publisher.publish(waiting, replace=True)


def _distinct(broadcast_id: str, targets: Iterable[Target], small: _Small) -> Iterator[Delivery]:
    """One delivery per distinct target, in the order given, as Broadcast.deliveries makes
    them. The ids seen are what a send keeps per target (~120 bytes each): the rows and
    targets themselves are gone once written. A channel named twice with different variables
    is refused (which of them would its text be filled in with?), rolling the send back."""
    seen: set[str] = set()
    filled: dict[str, int] = {}  # a personal broadcast's: delivery id -> its variables' hash
    delivery_id = ids.delivery_ids(broadcast_id)
    for target in targets:
        did = delivery_id(target.tenant, target.group, target.channel)
        if target.variables is not None:
            values = hash(frozenset(target.variables.items()))
            if filled.setdefault(did, values) != values:
                raise ValidationError(
                    "targets",
                    f"{target.tenant}/{target.group}/{target.channel}",
                    "names this channel twice with different variables",
                )
        if did not in seen:
            seen.add(did)
            delivery = Delivery(did, broadcast_id, target)
            if small.messages is not None:
                small.keep(delivery)
            yield delivery


class _Small:
    """The messages of a broadcast's deliveries while there are at most _KEEP: a small one
    (every HTTP API request is) is published from memory after its commit, with no read back
    (a query and a thread per send); a bigger one lets go of them and is read back."""

    def __init__(self) -> None:
        self.messages: list[DeliveryMessage] | None = []

    def keep(self, delivery: Delivery) -> None:
        if self.messages is not None and len(self.messages) < _KEEP:
            self.messages.append(delivery.message())
        else:
            self.messages = None
