"""What a Graph reply means for the delivery: sent, retry later, failed, or unknown.

Transient: 429, 5xx and connection errors raised before the request was sent. Ambiguous (the
post may exist): no answer after the request was sent; it becomes ``unknown`` rather than
being retried, because a duplicate announcement is seen by the whole channel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from threadcast.ledger import DeliveryState, Outcome
from worker.graph import GraphReply

_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0  # the exponential backoff's ceiling
    retry_after_cap: float = 300.0  # the most of a Retry-After we honour
    retry_ambiguous: bool = False  # THREADCAST_AMBIGUOUS=retry: re-send posts with no answer

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the next attempt: Retry-After if Graph said, else full jitter.

        Retries wait in the gate's delayed set, never in a Celery countdown, so even a long
        Retry-After cannot outlive the broker's visibility timeout and be duplicated.
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        return rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


def judge(
    reply: GraphReply, attempt: int, policy: RetryPolicy, now: datetime, rng: random.Random
) -> tuple[Outcome, float | None]:
    """The outcome to record and, for a retry, the delay before it."""
    if reply.ok:
        return _outcome(reply, DeliveryState.SENT), None
    if reply.status is None and reply.maybe_sent and not policy.retry_ambiguous:
        return _outcome(reply, DeliveryState.UNKNOWN), None
    if reply.status is None or reply.status in _TRANSIENT:
        if attempt >= policy.max_attempts:
            return _outcome(reply, DeliveryState.FAILED, f"gave up after {attempt} attempts"), None
        delay = policy.backoff(attempt, reply.retry_after, rng)
        retry_at = now + timedelta(seconds=delay)
        return _outcome(reply, DeliveryState.RETRYING, next_attempt_at=retry_at), delay
    return _outcome(reply, DeliveryState.FAILED), None


def _outcome(
    reply: GraphReply, state: DeliveryState, note: str | None = None,
    next_attempt_at: datetime | None = None,
) -> Outcome:  # fmt: skip
    message = reply.error_message
    if note:
        message = f"{note}: {message}" if message else note
    return Outcome(
        state=state, http_status=reply.status, request_id=reply.request_id,
        error_code=reply.error_code, error_message=message, retry_after=reply.retry_after,
        latency_ms=reply.latency_ms, next_attempt_at=next_attempt_at,
        message_id=reply.message_id,
    )  # fmt: skip
