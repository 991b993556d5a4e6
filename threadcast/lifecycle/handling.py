"""The worker's side of a delivery's life: every step that writes the ledger and the gate.

- take: a batch claimed in one transaction (``queued``/``retrying`` → ``sending``, with a lease
  and an attempt row naming the endpoint it posts to; a personal broadcast's claim also reads
  its target's variables) before any POST; then for each claim its body (built by the worker from
  the broadcast's stored message, :meth:`Handling.message`) and, right before its POST, its
  permit confirmed (``Keeper.start``). A claim that may not be posted at all is recorded
  ``failed`` without a POST (:meth:`Handling.refuse`). Whatever fails before the POST gives
  the claim back (no request was made): the delivery queues again, its unused permit given
  back.
- settle: the outcomes recorded in one transaction by the claims' holder; a throttled scope
  cools down for everyone; a retry is parked in the gate until due (never a Celery ETA).
- wait: a delivery whose tenant must sign in again leaves the gate (``waiting_auth``); one
  whose tenant's token is in trouble is parked, the reason noted in the ledger.

The worker (worker/deliver.py) keeps what is not the lifecycle's: tokens, the POST on the
wire, judging Graph's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from threadcast import metrics
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Keeper, Start
from threadcast.errors import BrokerError
from threadcast.ledger import (
    Claim,
    DeliveryState,
    Finished,
    Ledger,
    Outcome,
    Refusal,
    StoredMessage,
)

log = logging.getLogger("threadcast.worker")

# Cooldown fields (gate) -> the scope names of the throttled metric.
_SCOPE_KINDS = {"app": "app", "t": "tenant", "g": "team", "c": "channel"}
_T = TypeVar("_T")


@dataclass(frozen=True)
class Left:
    """A taken delivery that will not be posted now: its new state (None: untouched here)."""

    state: DeliveryState | None


class Handling:
    """The worker's way through a delivery's life; ``worker`` names the claims' holder."""

    def __init__(
        self,
        ledger: Ledger,
        gate: Keeper,
        worker: str,
        lease: timedelta,
        post_timeout: timedelta,
    ) -> None:
        self._ledger = ledger
        self._gate = gate
        self._worker = worker
        self._lease = lease
        self._post_timeout = post_timeout  # the longest a POST may take (THREADCAST_HTTP_TIMEOUT)

    # -- take ----------------------------------------------------------------------------
    def claim(
        self, wanted: Sequence[tuple[str, str]], endpoint: str | Sequence[str]
    ) -> list[Claim | Refusal]:
        """Claim each (delivery id, client-request-id) in one transaction, before any POST;
        each attempt records the Graph endpoint it posts to (``endpoint``: one for all, or
        one per delivery)."""
        return self._ledger.deliveries.claim_many(
            wanted, self._worker, self._lease, datetime.now(UTC), endpoint
        )

    def message(self, broadcast_id: str) -> StoredMessage | None:
        """The broadcast's message as stored once (content, type, send time, parts, whether
        personal); None: no such broadcast (its deliveries' claims are refused)."""
        return self._ledger.deliveries.message(broadcast_id)

    def refuse(self, message: DeliveryMessage, claim: Claim, code: str, reason: str) -> Left:
        """A claimed delivery that cannot be posted as it is (its message has parts and the
        deployment pins an endpoint that carries a body only, …): no POST is made; the
        attempt is recorded ``failed`` with ``code`` and ``reason`` (no HTTP status), and the
        delivery leaves the gate, its permit (never started) given back."""
        outcome = Outcome(DeliveryState.FAILED, error_code=code, error_message=reason)
        try:
            [state] = self._ledger.deliveries.record_many([(claim, outcome, datetime.now(UTC))])
        except BaseException:  # nothing was posted: it queues again, as any take that failed
            self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
            raise
        self._gate.drop(message)
        log.error("delivery %s not posted: %s: %s", claim.delivery_id, code, reason)
        return Left(state)

    def take(self, message: DeliveryMessage, claim: Claim, body: Callable[[], _T]) -> _T | Left:
        """Everything between the claim and the POST: the body (``body()``), then the permit.

        No request has been made before the POST, so whatever fails gives the claim back: a
        passing fault (Redis, the ledger) is retried, never left ``sending`` for the lease
        sweep to call ``unknown``. Returns the body, or :class:`Left` when no POST may be made.
        """
        try:
            made = body()
            if datetime.now(UTC) + self._post_timeout > claim.lease_until:
                # The claim waited (a ledger lock, a slow batch) so long that a POST begun
                # now could outlive its lease: the lease sweep would call it unknown -- or,
                # with THREADCAST_AMBIGUOUS=retry, send it again -- while it is in flight.
                log.warning(
                    "delivery %s: too little lease left to post; giving it back", claim.delivery_id
                )
                return self.give_back(message, claim)
            # The permit is confirmed last, right before the POST: the limits count the
            # real send time, not the moment the message was taken.
            verdict = self._gate.start(message)
            if verdict is Start.NO_ROOM:
                return self.give_back(message, claim)  # no room now: a fresh permit later
            if verdict is Start.CANCELLED:
                return self._cancelled(claim)
        except BaseException:
            self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
            raise
        return made

    def give_back(self, message: DeliveryMessage, claim: Claim) -> Left:
        """No POST was made: the attempt is forgotten and the delivery queues again (its
        unused permit given back)."""
        if not self._ledger.deliveries.unclaim(claim, datetime.now(UTC)):
            # Another claim holds it now, or it was finished another way: not ours to queue.
            log.warning("delivery %s: its claim was gone when given back", claim.delivery_id)
            self._gate.drop(message)
            return Left(None)
        self._gate.park(message, 0)
        return Left(None)

    def _cancelled(self, claim: Claim) -> Left:
        """Its broadcast was cancelled after the claim: no POST; recorded ``cancelled``."""
        moved = self._ledger.deliveries.cancel_claim(claim, datetime.now(UTC))
        log.info("delivery %s not posted: its broadcast was cancelled", claim.delivery_id)
        return Left(DeliveryState.CANCELLED if moved else None)

    def give_back_all(self, claims: Sequence[Claim | Refusal]) -> None:
        """Claims never taken (something raised before their turn): given back, best effort."""
        for claim in claims:
            if isinstance(claim, Claim):
                try:
                    self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
                except SQLAlchemyError as exc:  # the lease sweep settles it
                    log.warning(
                        "delivery %s: cannot give its claim back: %s", claim.delivery_id, exc
                    )

    def refused(self, message: DeliveryMessage, refusal: Refusal) -> Left:
        """The ledger refused the claim: the delivery waits in the gate until its retry time,
        or leaves the gate (its permit, never used, given back)."""
        if refusal.state is None:
            self.reject(message.to_wire(), f"unknown delivery id {message.delivery_id}")
            self._gate.drop(message)
        elif refusal.not_before is not None:
            # It came back before its retry time: it waits in the gate until then.
            wait = (refusal.not_before - datetime.now(UTC)).total_seconds()
            self._gate.park(message, wait)
            log.info("delivery %s not claimed: due in %.1f s", message.delivery_id, wait)
        else:
            # Sent, cancelled, unknown, or held by another claim: it leaves the gate, and
            # its permit, never used, goes back (no slot, no quota count).
            self._gate.drop(message)
            log.info("delivery %s not claimed: it is %s", message.delivery_id, refusal.state.value)
        return Left(None)

    def reject(self, raw: object, reason: str) -> None:
        """Record a message that breaks the contract (it is acknowledged and dropped)."""
        log.error("rejected message %.300r: %s", raw, reason)
        self._ledger.deliveries.reject_message(self._worker, reason, repr(raw), datetime.now(UTC))

    def put_back(self, messages: Sequence[DeliveryMessage]) -> None:
        """The worker is stopping: nothing is claimed; the batch waits for another worker."""
        for message in messages:
            try:
                self._gate.park(message, 0)
            except BrokerError as exc:  # still queued in the ledger: the orphan sweep
                log.warning("delivery %s: cannot be put back: %s", message.delivery_id, exc)

    def reroute(
        self, claim: Claim, answered: Outcome, endpoint: str, client_request_id: str
    ) -> Claim | None:
        """Graph proved the endpoint gone (nothing was posted): the attempt is recorded and
        the next one opened under the same claim, free of the retry budget."""
        return self._ledger.deliveries.reroute(
            claim,
            answered,
            endpoint,
            self._worker,
            client_request_id,
            self._lease,
            datetime.now(UTC),
        )

    # -- wait ----------------------------------------------------------------------------
    def wait_for_sign_in(self, message: DeliveryMessage, exc: Exception) -> Left:
        """No attempt is used: the delivery waits until ``threadcast login`` re-queues it."""
        reason = Outcome(
            DeliveryState.WAITING_AUTH, error_code="sign_in_required", error_message=str(exc)
        )
        moved = self._ledger.deliveries.suspend(message.delivery_id, reason, datetime.now(UTC))
        self._gate.forget(message.delivery_id)
        log.warning("delivery %s waits for a sign-in: %s", message.delivery_id, exc)
        return Left(DeliveryState.WAITING_AUTH if moved else None)

    def wait_out(
        self, messages: Sequence[DeliveryMessage], code: str, reason: str, wait: float
    ) -> None:
        """Back to the gate for ``wait`` seconds, the reason noted in the ledger (for
        ``threadcast status``); a ledger that cannot take the note does not stop the park."""
        if not messages:
            return
        now = datetime.now(UTC)
        try:
            self._ledger.deliveries.note(
                [m.delivery_id for m in messages],
                code,
                reason[:500],
                now + timedelta(seconds=wait),
                now,
            )
        except SQLAlchemyError as exc:
            log.warning(
                "tenant %s: cannot note why its deliveries wait: %s", messages[0].tenant, exc
            )
        for message in messages:
            try:
                self._gate.park(message, wait)
            except BrokerError as exc:
                # Still queued in the ledger: the orphan sweep puts it back in the gate.
                log.warning("delivery %s: cannot be parked: %s", message.delivery_id, exc)

    # -- settle --------------------------------------------------------------------------
    def finish(self, finished: Sequence[Finished]) -> list[DeliveryState | None]:
        """Record the outcomes in one transaction; for each the state recorded (None: its
        claim was lost meanwhile)."""
        return self._ledger.deliveries.record_many(finished)

    def retry_later(
        self,
        message: DeliveryMessage,
        delay: float,
        *,
        status: int | None,
        retry_after: float | None,
        park: bool = True,
    ) -> None:
        """A recorded retry waits in the gate for ``delay`` seconds (``park``); a 429, or a 503
        with Retry-After, first cools the throttled scope down for everyone."""
        throttled = status == 429 or (status == 503 and retry_after is not None)
        try:
            if throttled:
                # Graph asked everyone to wait, not just this delivery.
                scope = self._gate.cool_down(message, delay, tenant_wide=status == 503)
                log.warning("Graph %s: scope %s cools down for %.1f s", status, scope, delay)
                if status == 429:
                    metrics.record_throttled(_SCOPE_KINDS.get(scope.split(":")[0], scope))
                    # Posts arrive later than their permits by more than the guard covers.
                    self._gate.throttled()
            if park:
                self._gate.park(message, delay)
        except BrokerError as exc:
            # The retry is in the ledger (``retrying``); the orphan sweep queues it again.
            log.warning("delivery %s: its retry could not be parked: %s", message.delivery_id, exc)


def note_over_quota(ledger: Ledger, messages: Sequence[DeliveryMessage], until: datetime) -> None:
    """The dispatcher parked these until midnight UTC (their channel's daily quota is used up):
    the ledger says why, for ``threadcast status``."""
    ledger.deliveries.note(
        [m.delivery_id for m in messages],
        "channel_daily_quota",
        "the channel's daily message quota is used up; it goes on after midnight UTC",
        until,
        datetime.now(UTC),
    )
