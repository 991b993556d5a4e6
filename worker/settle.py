"""After the answer: log it, record it (in one transaction for a batch, kept through a brief
ledger outage), count it, and put retries back in the gate (both through the lifecycle,
threadcast.lifecycle.Handling).

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
from threadcast.ledger import Claim, DeliveryState, Finished, Outcome
from threadcast.lifecycle import Handling
from threadcast.logs import log_attempt
from worker.graph import GraphReply

log = logging.getLogger("threadcast.worker")

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
    def __init__(self, handling: Handling, sleep: Callable[[float], None] = time.sleep) -> None:
        self._handling = handling
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
                self._retry_later(one, one.delay)
            elif state is DeliveryState.CANCELLED and one.delay is not None:
                # Its broadcast was cancelled: not retried, but a throttled scope still cools.
                self._retry_later(one, one.delay, park=False)

    def _record(self, posted: Sequence[Posted]) -> list[DeliveryState | None]:
        deadline = max(p.claim.lease_until for p in posted)
        wait = _FIRST_WAIT
        while True:
            try:
                return self._handling.finish([p.finished for p in posted])
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

    def _retry_later(self, one: Posted, delay: float, *, park: bool = True) -> None:
        self._handling.retry_later(
            one.message,
            delay,
            status=one.reply.status,
            retry_after=one.reply.retry_after,
            park=park,
        )


def _log(posted: Posted) -> None:
    log_reply(posted.claim, posted.reply, posted.outcome.state.value)


def log_reply(claim: Claim, reply: GraphReply, outcome: str) -> None:
    """The attempt's one log line."""
    log_attempt(
        log,
        broadcast=claim.broadcast_id,
        delivery=claim.delivery_id,
        tenant=claim.tenant,
        attempt=claim.number,
        status=reply.status,
        outcome=outcome,
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
