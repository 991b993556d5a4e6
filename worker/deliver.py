"""Deliveries, start to finish: token, claim, permit, POST, judge, record, park if needed.

Order matters for the invariants: the claim (and its attempt row) is committed before the
POST, so a crash mid-POST leaves a visible ``sending`` delivery with an open attempt, which
an expired lease turns into ``unknown``; the outcome is written only by the claim holder.
The permit is confirmed after claiming, right before the POST, so the rate limits see the
real send time. A Celery message carries a batch of deliveries, taken one after another;
each claim shares its transaction with the previous delivery's outcome.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from threadcast import metrics
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate
from threadcast.endpoints import segment_gone
from threadcast.errors import BrokerError, SignInRequiredError, ThreadcastError, TokenCacheError
from threadcast.ids import new_request_id
from threadcast.ledger import Claim, DeliveryState, Finished, Ledger, Outcome, Refusal
from threadcast.ledger.deliveries import REROUTED
from threadcast.logs import log_attempt
from worker.endpoint import EndpointChooser
from worker.graph import Endpoint, GraphClient, GraphReply
from worker.policy import RetryPolicy, judge
from worker.tokens import REFUSAL_NOTICE_SECONDS, TokenProvider

log = logging.getLogger("threadcast.worker")

# Cooldown fields (gate) -> the scope names of the throttled metric.
_SCOPE_KINDS = {"app": "app", "t": "tenant", "g": "team"}


@dataclass(frozen=True)
class _Posted:
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


@dataclass(frozen=True)
class Done:
    """What became of one message: the delivery's new state (None: untouched)."""

    state: DeliveryState | None


class Deliverer:
    def __init__(
        self, ledger: Ledger, gate: Gate, tokens: TokenProvider, graph: GraphClient,
        endpoints: EndpointChooser, policy: RetryPolicy, worker: str, lease: timedelta,
        post_timeout: timedelta,
    ) -> None:  # fmt: skip
        self._ledger = ledger
        self._gate = gate
        self._tokens = tokens
        self._graph = graph
        self._endpoints = endpoints
        self._policy = policy
        self._worker = worker
        self._lease = lease
        self._post_timeout = post_timeout  # the longest a POST may take (THREADCAST_HTTP_TIMEOUT)
        self._rng = random.Random()  # noqa: S311 - jitter, not secrecy
        self._bodies: dict[tuple[str, str], tuple[bytes, datetime | None]] = {}

    def deliver_batch(self, messages: Sequence[DeliveryMessage]) -> list[Done]:
        """Deliver each message in turn; what became of each, in order.

        Each delivery's claim is committed in the same transaction that records the
        previous delivery's outcome: one commit per delivery, and never more than one posted
        delivery whose outcome is unrecorded (what a kill can leave ``unknown``). If anything
        raises, the outcome in hand is still recorded, and the deliveries not reached stay
        unclaimed for Celery's retry of the message.
        """
        done: list[Done] = []
        posted: _Posted | None = None
        try:
            for message in messages:
                if posted is not None and not self._tokens.at_hand(message.tenant):
                    # Getting a token may take a while (a refresh, a lock): record the answer
                    # in hand first, so it cannot outlive its lease unrecorded.
                    self._record(posted)
                    posted = None
                try:
                    token = self._tokens.token(message.tenant)
                except (SignInRequiredError, TokenCacheError) as exc:
                    # Both need a person (a sign-in, or the right key): wait, no attempt used.
                    done.append(self._wait_for_sign_in(message, exc))
                    continue
                now = datetime.now(UTC)
                endpoint = self._endpoints.current()
                recorded, claim = self._ledger.deliveries.finish_and_claim(
                    posted.finished if posted else None, message.delivery_id, self._worker,
                    new_request_id(), self._lease, now, endpoint.name,
                )  # fmt: skip
                if posted is not None:
                    previous, posted = posted, None
                    self._settled_before(previous, bool(recorded), claim)
                if isinstance(claim, Refusal):
                    done.append(self._refused(message, claim))
                    continue
                ready = self._ready(message, claim, endpoint)
                if isinstance(ready, Done):
                    done.append(ready)
                    continue
                posted = self._attempt(message, claim, token, endpoint, *ready)
                done.append(Done(posted.outcome.state))
        finally:
            if posted is not None:
                self._record(posted)
        return done

    def _record(self, posted: _Posted) -> None:
        """Record the outcome in hand in a transaction of its own, then settle it."""
        self._settled(posted, self._ledger.deliveries.finish(*posted.finished))

    def _settled_before(self, posted: _Posted, recorded: bool, claim: Claim | Refusal) -> None:
        """:meth:`_settled` for the previous delivery while ``claim`` is already held: if
        that fails, the claim (no request made yet) is given back before the error goes on."""
        try:
            self._settled(posted, recorded)
        except BaseException:
            if isinstance(claim, Claim):
                self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
            raise

    def _ready(
        self, message: DeliveryMessage, claim: Claim, endpoint: Endpoint
    ) -> tuple[bytes, datetime | None] | Done:
        """Everything between the claim and the POST: the permit and the body.

        No request has been made yet, so whatever fails here gives the claim back: a passing
        fault (Redis, the ledger) is retried, never left ``sending`` for the lease sweep to
        call ``unknown``.
        """
        try:
            # The permit is confirmed last, right before the POST: the limits count the real
            # send time, not the moment the message was taken (a claim can wait on the ledger).
            if not self._gate.start(message):
                return self._give_back(message, claim)  # no room now: a fresh permit later
            body, send_at = self._body(claim.broadcast_id, endpoint)
        except Exception:
            self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
            raise
        if datetime.now(UTC) + self._post_timeout > claim.lease_until:
            # The claim waited (a ledger lock, a token refresh) so long that a POST begun now
            # could outlive its lease: the lease sweep would call it unknown -- or, with
            # THREADCAST_AMBIGUOUS=retry, send it again -- while it is still in flight.
            log.warning("delivery %s: too little lease left to post; queued again",
                        claim.delivery_id)  # fmt: skip
            return self._give_back(message, claim)
        return body, send_at

    def _give_back(self, message: DeliveryMessage, claim: Claim) -> Done:
        """No POST was made: the attempt is forgotten and the delivery queues again."""
        self._ledger.deliveries.unclaim(claim, datetime.now(UTC))
        self._gate.park(message, 0)
        return Done(None)

    def _attempt(
        self, message: DeliveryMessage, claim: Claim, token: str, endpoint: Endpoint,
        body: bytes, send_at: datetime | None,
    ) -> _Posted:  # fmt: skip
        reply = self._post(claim, token, endpoint, body)
        if segment_gone(reply.status, reply.error_message) and self._endpoints.may_switch(
            endpoint
        ):
            moved = self._reroute(claim, reply)
            if moved is None:
                return self._posted_again_soon(message, claim, reply, send_at)
            claim, endpoint = moved
            body = self._body(claim.broadcast_id, endpoint)[0]
            reply = self._post(claim, token, endpoint, body)
        now = datetime.now(UTC)
        delay: float | None
        if reply.status == 401 and claim.previous_status != 401:
            # A token Graph refused is never used again; one retry with a fresh one, once every
            # process has had time to hear of the refusal.
            self._tokens.reject(claim.tenant, token)
            delay = REFUSAL_NOTICE_SECONDS
            outcome = _auth_retry(reply, now + timedelta(seconds=delay))
        else:
            budget_used = claim.number - claim.attempt_base
            outcome, delay = judge(reply, budget_used, self._policy, now, self._rng)
            if outcome.state is DeliveryState.WAITING_AUTH:
                # Graph refused for want of consent: every post of the tenant would be, so
                # the tenant waits for a sign-in, not just this delivery.
                self._tokens.withdraw(claim.tenant, token, outcome.error_message or "")
        return _Posted(message, claim, reply, outcome, delay, send_at, now)

    def _post(self, claim: Claim, token: str, endpoint: Endpoint, body: bytes) -> GraphReply:
        return self._graph.post(
            endpoint, token, claim.group, claim.channel, body, claim.client_request_id,
            claim.number,
        )  # fmt: skip

    def _reroute(self, claim: Claim, reply: GraphReply) -> tuple[Claim, Endpoint] | None:
        """Graph proved the beta endpoint gone (nothing was posted): the deployment switches
        and this delivery goes on to v1.0 at once, its next attempt free of its budget."""
        endpoint = self._endpoints.switch(reply)
        answered = _reply_outcome(reply, DeliveryState.RETRYING)
        _log_rerouted(claim, reply)
        try:
            moved = self._ledger.deliveries.reroute(
                claim, answered, endpoint.name, self._worker, new_request_id(), self._lease,
                datetime.now(UTC),
            )  # fmt: skip
        except (SQLAlchemyError, ThreadcastError) as exc:
            log.warning("delivery %s: cannot record its rerouted attempt: %s",
                        claim.delivery_id, exc)  # fmt: skip
            return None
        return None if moved is None else (moved, endpoint)

    def _posted_again_soon(
        self, message: DeliveryMessage, claim: Claim, reply: GraphReply,
        send_at: datetime | None,
    ) -> _Posted:  # fmt: skip
        """The answer proved nothing was posted, but the next attempt could not be opened
        under this claim: the delivery is retried shortly (on the new endpoint)."""
        now = datetime.now(UTC)
        outcome = _reply_outcome(reply, DeliveryState.RETRYING, now + timedelta(seconds=1))
        return _Posted(message, claim, reply, outcome, 1.0, send_at, now)

    def _settled(self, posted: _Posted, recorded: bool) -> None:
        """The outcome is in the ledger (or the claim was lost): log, count, park a retry."""
        _observe(posted.claim, posted.reply, posted.outcome, recorded, posted.send_at, posted.at)
        if recorded and posted.delay is not None:
            self._retry_later(posted.message, posted.reply, posted.delay)

    def _retry_later(self, message: DeliveryMessage, reply: GraphReply, delay: float) -> None:
        throttled = reply.status == 429 or (reply.status == 503 and reply.retry_after is not None)
        try:
            if throttled:
                # Graph asked everyone to wait, not just this delivery.
                scope = self._gate.cool_down(message, delay, tenant_wide=reply.status == 503)
                log.warning("Graph %s: scope %s cools down for %.1f s", reply.status, scope, delay)
                if reply.status == 429:
                    metrics.record_throttled(_SCOPE_KINDS.get(scope.split(":")[0], scope))
            self._gate.park(message, delay)
        except BrokerError as exc:
            # The retry is in the ledger (``retrying``); the orphan sweep queues it again.
            log.warning("delivery %s: its retry could not be parked: %s", message.delivery_id, exc)

    def _body(self, broadcast_id: str, endpoint: Endpoint) -> tuple[bytes, datetime | None]:
        """The request body (the same for every delivery of a broadcast on one endpoint) and
        the broadcast's send time."""
        key = (endpoint.name, broadcast_id)
        found = self._bodies.get(key)
        if found is None:
            content, content_type, send_at = self._ledger.deliveries.content(broadcast_id)
            found = (endpoint.body(content, content_type), send_at)
            if len(self._bodies) > 256:
                self._bodies.clear()
            self._bodies[key] = found
        return found

    def _wait_for_sign_in(self, message: DeliveryMessage, exc: Exception) -> Done:
        reason = Outcome(
            DeliveryState.WAITING_AUTH, error_code="sign_in_required", error_message=str(exc)
        )
        moved = self._ledger.deliveries.hold(message.delivery_id, reason, datetime.now(UTC))
        self._gate.forget(message.delivery_id)  # `threadcast login` re-queues it
        log.warning("delivery %s waits for a sign-in: %s", message.delivery_id, exc)
        return Done(DeliveryState.WAITING_AUTH if moved else None)

    def reject(self, raw: object, reason: str) -> None:
        """Record a message that breaks the contract (it is acknowledged and dropped)."""
        log.error("rejected message %.300r: %s", raw, reason)
        self._ledger.deliveries.reject_message(self._worker, reason, repr(raw), datetime.now(UTC))

    def _refused(self, message: DeliveryMessage, refusal: Refusal) -> Done:
        if refusal.state is None:
            self.reject(message.to_wire(), f"unknown delivery id {message.delivery_id}")
        elif refusal.not_before is not None:
            # It came back before its retry time: it waits in the gate until then.
            wait = (refusal.not_before - datetime.now(UTC)).total_seconds()
            self._gate.park(message, wait)
            log.info("delivery %s not claimed: due in %.1f s", message.delivery_id, wait)
        else:
            log.info(
                "delivery %s not claimed: it is %s", message.delivery_id, refusal.state.value
            )
        return Done(None)


def _auth_retry(reply: GraphReply, retry_at: datetime) -> Outcome:
    return _reply_outcome(reply, DeliveryState.RETRYING, retry_at)


def _reply_outcome(
    reply: GraphReply, state: DeliveryState, retry_at: datetime | None = None
) -> Outcome:
    return Outcome(
        state, http_status=reply.status, request_id=reply.request_id,
        error_code=reply.error_code, error_message=reply.error_message,
        latency_ms=reply.latency_ms, next_attempt_at=retry_at,
    )  # fmt: skip


def _log_rerouted(claim: Claim, reply: GraphReply) -> None:
    log_attempt(
        log, broadcast=claim.broadcast_id, delivery=claim.delivery_id, tenant=claim.tenant,
        attempt=claim.number, status=reply.status, outcome=REROUTED,
        request_id=reply.request_id, client_request_id=claim.client_request_id,
        error_code=reply.error_code, latency_ms=reply.latency_ms,
    )  # fmt: skip
    metrics.record_attempt(reply.status, claim.tenant, REROUTED)


def _observe(
    claim: Claim, reply: GraphReply, outcome: Outcome, recorded: bool,
    send_at: datetime | None, now: datetime,
) -> None:  # fmt: skip
    """The attempt's one log line and its metrics."""
    log_attempt(
        log, broadcast=claim.broadcast_id, delivery=claim.delivery_id, tenant=claim.tenant,
        attempt=claim.number, status=reply.status, outcome=outcome.state.value,
        request_id=reply.request_id, client_request_id=claim.client_request_id,
        error_code=reply.error_code, latency_ms=reply.latency_ms,
    )  # fmt: skip
    if not recorded:
        log.warning("delivery %s: its claim was lost before the outcome was recorded",
                    claim.delivery_id)  # fmt: skip
    metrics.record_attempt(reply.status, claim.tenant, outcome.state.value)
    if outcome.state is DeliveryState.SENT:
        since = max(claim.created_at, send_at) if send_at else claim.created_at
        metrics.observe_enqueue_to_sent((now - since).total_seconds())
