"""What a Graph reply means for the delivery: sent, retry later, failed, wait, or unknown.

Transient: 429, 5xx and connection errors raised before the request was sent. Ambiguous (the
post may exist): no answer after the request was sent; it becomes ``unknown`` rather than
being retried, because a duplicate announcement is seen by the whole channel. A ``403`` for
missing permission is the tenant's (its sign-in lacks consent): the delivery waits for a
sign-in (``waiting_auth``) instead of failing, like every other delivery of the tenant. Any
other ``403``/``404`` is the target's (not a member of the team, no such channel): only that
delivery fails, with Graph's error code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from threadcast.endpoints import segment_gone
from threadcast.ledger import DeliveryState, Outcome
from worker.graph import GraphReply

_TRANSIENT = frozenset({429, 500, 502, 503, 504})
# How Graph words a 403 for a token without the endpoint's permission.
_MISSING_SCOPE = "missing scope permissions"
CONSENT_NOTE = (
    "the tenant's sign-in lacks the permission this endpoint needs: an administrator grants "
    "consent, then threadcast login --tenant TENANT resumes its deliveries"
)
GONE_NOTE = (
    "Graph no longer has the beta chatthreads endpoint: set THREADCAST_ENDPOINT=auto "
    "(or channel-messages), then threadcast retry the broadcast's failed deliveries"
)


def missing_consent(reply: GraphReply) -> bool:
    return reply.status == 403 and _MISSING_SCOPE in (reply.error_message or "").lower()


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
    if missing_consent(reply):
        return _outcome(reply, DeliveryState.WAITING_AUTH, CONSENT_NOTE), None
    if segment_gone(reply.status, reply.error_message):
        return _outcome(reply, DeliveryState.FAILED, GONE_NOTE), None
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
    reply: GraphReply,
    state: DeliveryState,
    note: str | None = None,
    next_attempt_at: datetime | None = None,
) -> Outcome:
    message = reply.error_message
    if note:
        message = f"{note}: {message}" if message else note
    return Outcome(
        state=state,
        http_status=reply.status,
        request_id=reply.request_id,
        error_code=reply.error_code,
        error_message=message,
        retry_after=reply.retry_after,
        latency_ms=reply.latency_ms,
        next_attempt_at=next_attempt_at,
        message_id=reply.message_id,
    )
