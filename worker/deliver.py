"""One delivery, start to finish: token, claim, POST, judge, record.

Order matters for the invariants: the claim (and its attempt row) is committed before the
POST, so a crash mid-POST leaves a visible ``sending`` delivery with an open attempt, which
an expired lease turns into ``unknown``; the outcome is written only by the claim holder.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from threadcast.contract import DeliveryMessage
from threadcast.errors import BrokerError, SignInRequiredError, TokenCacheError
from threadcast.ids import new_request_id
from threadcast.ledger import Claim, DeliveryState, Ledger, Outcome, Refusal
from worker.graph import GraphClient, GraphReply, chatthread_body
from worker.policy import RetryPolicy, judge
from worker.tokens import TokenProvider

log = logging.getLogger("threadcast.worker")


@dataclass(frozen=True)
class Done:
    """What became of one message: the delivery's state (None: untouched) and any retry delay."""

    state: DeliveryState | None
    retry_in: float | None = None


class Deliverer:
    def __init__(
        self, ledger: Ledger, tokens: TokenProvider, graph: GraphClient, policy: RetryPolicy,
        worker: str, lease: timedelta,
    ) -> None:  # fmt: skip
        self._ledger = ledger
        self._tokens = tokens
        self._graph = graph
        self._policy = policy
        self._worker = worker
        self._lease = lease
        self._rng = random.Random()  # noqa: S311 - jitter, not secrecy
        self._bodies: dict[str, bytes] = {}

    def deliver(self, message: DeliveryMessage) -> Done:
        try:
            self._tokens.token(message.tenant)
        except (SignInRequiredError, TokenCacheError) as exc:
            # Both need a person (a sign-in, or the right key): wait without burning attempts.
            return self._wait_for_sign_in(message, exc)
        except BrokerError as exc:
            log.warning("delivery %s: no token yet: %s", message.delivery_id, exc)
            return Done(None, self._policy.backoff(1, None, self._rng))
        now = datetime.now(UTC)
        claim = self._ledger.deliveries.claim(
            message.delivery_id, self._worker, new_request_id(), self._lease, now
        )
        if isinstance(claim, Refusal):
            return self._refused(message, claim)
        return self._attempt(claim)

    def _attempt(self, claim: Claim) -> Done:
        try:
            token = self._tokens.token(claim.tenant)
        except (SignInRequiredError, TokenCacheError, BrokerError) as exc:
            return self._no_token(claim, exc)
        reply = self._graph.create_chat_thread(
            token, claim.group, claim.channel, self._body(claim.broadcast_id),
            claim.client_request_id, claim.number,
        )  # fmt: skip
        now = datetime.now(UTC)
        delay: float | None
        if reply.status == 401 and claim.previous_status != 401:
            # A token Graph refused is never used again; one retry with a fresh one.
            self._tokens.reject(claim.tenant, token)
            outcome, delay = _auth_retry(reply), 0.0
        else:
            budget_used = claim.number - claim.attempt_base
            outcome, delay = judge(reply, budget_used, self._policy, now, self._rng)
        recorded = self._ledger.deliveries.finish(claim, outcome, now)
        _log_attempt(claim, reply, outcome, recorded)
        return Done(outcome.state, delay if recorded else None)

    def _no_token(self, claim: Claim, exc: Exception) -> Done:
        # Rare: the token vanished between the check before claiming and now. No POST was
        # made, so the delivery goes back without counting against its attempts' meaning.
        waiting = isinstance(exc, SignInRequiredError | TokenCacheError)
        state = DeliveryState.WAITING_AUTH if waiting else DeliveryState.RETRYING
        code = "sign_in_required" if waiting else "token_unavailable"
        outcome = Outcome(state, error_code=code, error_message=str(exc))
        self._ledger.deliveries.finish(claim, outcome, datetime.now(UTC))
        return Done(state, None if waiting else self._policy.backoff(1, None, self._rng))

    def _body(self, broadcast_id: str) -> bytes:
        body = self._bodies.get(broadcast_id)
        if body is None:
            content, content_type = self._ledger.deliveries.content(broadcast_id)
            body = chatthread_body(content, content_type)
            if len(self._bodies) > 256:
                self._bodies.clear()
            self._bodies[broadcast_id] = body
        return body

    def _wait_for_sign_in(self, message: DeliveryMessage, exc: Exception) -> Done:
        reason = Outcome(
            DeliveryState.WAITING_AUTH, error_code="sign_in_required", error_message=str(exc)
        )
        moved = self._ledger.deliveries.hold(message.delivery_id, reason, datetime.now(UTC))
        log.warning("delivery %s waits for a sign-in: %s", message.delivery_id, exc)
        return Done(DeliveryState.WAITING_AUTH if moved else None)

    def reject(self, raw: object, reason: str) -> None:
        """Record a message that breaks the contract (it is acknowledged and dropped)."""
        log.error("rejected message %.300r: %s", raw, reason)
        self._ledger.deliveries.reject_message(self._worker, reason, repr(raw), datetime.now(UTC))

    def _refused(self, message: DeliveryMessage, refusal: Refusal) -> Done:
        if refusal.state is None:
            self.reject(message.to_wire(), f"unknown delivery id {message.delivery_id}")
        else:
            log.info(
                "delivery %s not claimed: it is %s", message.delivery_id, refusal.state.value
            )
        return Done(None)


def _auth_retry(reply: GraphReply) -> Outcome:
    return Outcome(
        DeliveryState.RETRYING, http_status=reply.status, request_id=reply.request_id,
        error_code=reply.error_code, error_message=reply.error_message,
        latency_ms=reply.latency_ms,
    )  # fmt: skip


def _log_attempt(claim: Claim, reply: GraphReply, outcome: Outcome, recorded: bool) -> None:
    log.info(
        "attempt broadcast=%s delivery=%s tenant=%s attempt=%d status=%s outcome=%s "
        "request_id=%s client_request_id=%s latency_ms=%.1f%s",
        claim.broadcast_id, claim.delivery_id, claim.tenant, claim.number, reply.status,
        outcome.state.value, reply.request_id, claim.client_request_id, reply.latency_ms,
        "" if recorded else " (claim lost before the outcome was recorded)",
    )  # fmt: skip
