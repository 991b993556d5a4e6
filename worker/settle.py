"""After the answer: log it, record it (in one transaction for a batch, kept through a brief
ledger outage), count it, and put retries back in the gate.

The log line comes first: it is the one record of an answer that exists before the ledger's,
so an operator can reconcile even an outcome that never reached a ledger that stayed down.
An answer is written by its claim only, and the writing is retried with backoff for as long
as that claim's lease lasts: past it, the lease sweep may already have judged the delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from threadcast import metrics
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate
from threadcast.errors import BrokerError
from threadcast.ledger import Claim, DeliveryState, Finished, Ledger, Outcome
from threadcast.logs import log_attempt
from worker.graph import GraphReply

log = logging.getLogger("threadcast.worker")

# Cooldown fields (gate) -> the scope names of the throttled metric.
_SCOPE_KINDS = {"app": "app", "t": "tenant", "g": "team", "c": "channel"}
_FIRST_WAIT = 0.05  # seconds before the first retry of a failed ledger write; doubles
_LONGEST_WAIT = 2.0


@dataclass(frozen=True)
class Posted:
    """A POST that was answered (or not), its outcome judged but not yet recorded."""

    message: DeliveryMessage
    claim: Claim
    reply: GraphReply
    outcome: Outcome
    delay: float | None  # retry after this many seconds (None: no retry)
    send_at: datetime | None
    at: datetime

    @property
    def finished(self) -> Finished:
        return self.claim, self.outcome, self.at


class Settler:
    def __init__(
        self, ledger: Ledger, gate: Gate, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._ledger = ledger
        self._gate = gate
        self._sleep = sleep

    def settle(self, posted: Sequence[Posted]) -> None:
        """Log, record (one transaction), count, park retries. Raises only when the ledger
        stayed unavailable for the rest of every claim's lease."""
        if not posted:
            return
        for one in posted:
            _log(one)
        recorded = self._record(posted)
        for one, state in zip(posted, recorded, strict=True):
            _count(one, state is not None)
            if state is DeliveryState.RETRYING and one.delay is not None:
                self._retry_later(one.message, one.reply, one.delay)
            elif state is DeliveryState.CANCELLED and one.delay is not None:
                # Its broadcast was cancelled: not retried, but a throttled scope still cools.
                self._retry_later(one.message, one.reply, one.delay, park=False)

    def _record(self, posted: Sequence[Posted]) -> list[DeliveryState | None]:
        deadline = max(p.claim.lease_until for p in posted)
        wait = _FIRST_WAIT
        while True:
            try:
                return self._ledger.deliveries.record_many([p.finished for p in posted])
            except SQLAlchemyError as exc:
                if datetime.now(UTC).timestamp() + wait >= deadline.timestamp():
                    raise
                log.warning(
                    "the ledger refused %d outcomes (%s: %s); they are kept and written "
                    "again in %.2f s",
                    len(posted),
                    type(exc).__name__,
                    str(exc)[:200],
                    wait,
                )
            self._sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)

    def _retry_later(
        self, message: DeliveryMessage, reply: GraphReply, delay: float, *, park: bool = True
    ) -> None:
        throttled = reply.status == 429 or (reply.status == 503 and reply.retry_after is not None)
        try:
            if throttled:
                # Graph asked everyone to wait, not just this delivery.
                scope = self._gate.cool_down(message, delay, tenant_wide=reply.status == 503)
                log.warning("Graph %s: scope %s cools down for %.1f s", reply.status, scope, delay)
                if reply.status == 429:
                    metrics.record_throttled(_SCOPE_KINDS.get(scope.split(":")[0], scope))
                    # Posts arrive later than their permits by more than the guard covers.
                    self._gate.throttled()
            if park:
                self._gate.park(message, delay)
        except BrokerError as exc:
            # The retry is in the ledger (``retrying``); the orphan sweep queues it again.
            log.warning("delivery %s: its retry could not be parked: %s", message.delivery_id, exc)


def _log(posted: Posted) -> None:
    """The attempt's one log line."""
    claim, reply = posted.claim, posted.reply
    log_attempt(
        log,
        broadcast=claim.broadcast_id,
        delivery=claim.delivery_id,
        tenant=claim.tenant,
        attempt=claim.number,
        status=reply.status,
        outcome=posted.outcome.state.value,
        request_id=reply.request_id,
        client_request_id=claim.client_request_id,
        error_code=reply.error_code,
        latency_ms=reply.latency_ms,
    )


def _count(posted: Posted, recorded: bool) -> None:
    claim, outcome = posted.claim, posted.outcome
    if not recorded:
        log.warning(
            "delivery %s: its claim was lost before the outcome was recorded", claim.delivery_id
        )
    metrics.record_attempt(posted.reply.status, claim.tenant, outcome.state.value)
    if outcome.state is DeliveryState.SENT:
        send_at = posted.send_at
        since = max(claim.created_at, send_at) if send_at else claim.created_at
        metrics.observe_enqueue_to_sent((posted.at - since).total_seconds())
