"""The worker's side of the ledger: claim a delivery under a lease, record what happened.

The claim is what turns Celery's at-least-once messages into at-most-once posting: only a
``queued`` or ``retrying`` delivery can be claimed, the claim and its attempt row are
written in one transaction before any HTTP request, and the outcome is written only by the
holder of that claim (identified by the attempt number it incremented).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from threadcast.contract import ContentType, DeliveryMessage
from threadcast.ledger.broadcasts import MESSAGE_COLUMNS, message_of
from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import attempts, broadcasts, deliveries, rejected_messages
from threadcast.ledger.states import CLAIMABLE, REROUTED, DeliveryState
from threadcast.message import MessageParts

#: What a cancelled broadcast's delivery records instead of an outcome other than these: a
#: ``sent`` post is the truth, an ``unknown`` one may exist (an operator must know).
KEPT_AFTER_CANCEL = frozenset({DeliveryState.SENT, DeliveryState.UNKNOWN})

LOST_LEASE = "worker_lost"
# A delivery waiting for a retry time may be claimed this much before it (clocks differ a
# little between the machine that parked it and the one that released it).
EARLY_CLAIM = timedelta(seconds=0.5)


@dataclass(frozen=True)
class Claim:
    """A delivery this worker may now POST, exactly once, before its lease ends."""

    delivery_id: str
    broadcast_id: str
    tenant: str
    group: str
    channel: str
    number: int  # the attempt number; with the delivery id it identifies the claim
    previous_status: int | None  # the HTTP status of the attempt before this one
    attempt_base: int  # attempts before the last operator re-queue (the budget restarts there)
    created_at: datetime  # when the delivery was accepted (enqueue-to-sent latency)
    attempt_id: int
    client_request_id: str
    lease_until: datetime
    endpoint: str | None = None  # the Graph endpoint this attempt posts to
    # Its target's variables, for a personal broadcast's content (None: none stored).
    variables: dict[str, str] | None = None


@dataclass(frozen=True)
class StoredMessage:
    """A broadcast's message as stored once for all its deliveries: what the worker builds
    each request body from."""

    content: str
    content_type: ContentType
    send_at: datetime | None  # None: at once
    parts: MessageParts = field(default_factory=MessageParts)  # all beside the body
    personal: bool = False  # content and subject are templates, filled per delivery


@dataclass(frozen=True)
class Refusal:
    """Why a delivery was not claimed: its state, and the lease end if another holds it, or
    when it is due if it waits for a retry time (``not_before``)."""

    state: DeliveryState | None  # None: no such delivery
    lease_until: datetime | None = None
    not_before: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What one attempt ended in; ``state`` is where the delivery goes next."""

    state: DeliveryState
    http_status: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    next_attempt_at: datetime | None = None
    message_id: str | None = None  # the message Graph created (channel-messages endpoint)


#: An attempt whose answer is in: the claim it was made under, what became of it, when.
Finished = tuple[Claim, Outcome, datetime]


class DeliveryBook:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim_many(
        self,
        wanted: Sequence[tuple[str, str]],
        worker: str,
        lease: timedelta,
        now: datetime,
        endpoint: str | Sequence[str | None] | None = None,
    ) -> list[Claim | Refusal]:
        """Claim each (delivery id, client-request-id) in one transaction (one commit for a
        whole batch); the claims and refusals in the order asked. ``endpoint``, the Graph
        endpoint each attempt posts to, is one for all or one per delivery (a broadcast with
        message parts goes by v1.0 whatever the deployment's endpoint)."""
        endpoints = (
            [endpoint] * len(wanted) if endpoint is None or isinstance(endpoint, str) else endpoint
        )
        if len(endpoints) != len(wanted):
            raise ValueError(f"{len(wanted)} deliveries, {len(endpoints)} endpoints")
        with self._engine.begin() as conn:
            return [
                _claim(conn, delivery_id, worker, crid, lease, now, name)
                for (delivery_id, crid), name in zip(wanted, endpoints, strict=True)
            ]

    def finish_many(self, finished: Sequence[Finished]) -> list[bool]:
        """Record several attempts' outcomes in one transaction (group commit); for each,
        whether it was recorded (False: its claim was lost meanwhile)."""
        return [state is not None for state in self.record_many(finished)]

    def record_many(self, finished: Sequence[Finished]) -> list[DeliveryState | None]:
        """As :meth:`finish_many`, but for each the state recorded (None: not recorded): an
        outcome other than ``sent`` or ``unknown`` of a cancelled broadcast's delivery is
        recorded ``cancelled`` (the attempt row keeps what Graph answered)."""
        with self._engine.begin() as conn:
            cancelled = _cancelled_among(
                conn, {c.broadcast_id for c, o, _ in finished if o.state not in KEPT_AFTER_CANCEL}
            )
            return [_finish(conn, c, o, at, c.broadcast_id in cancelled) for c, o, at in finished]

    def reroute(
        self,
        claim: Claim,
        answered: Outcome,
        endpoint: str,
        worker: str,
        client_request_id: str,
        lease: timedelta,
        now: datetime,
    ) -> Claim | None:
        """Close an attempt whose answer proved nothing was posted (its endpoint is gone) and
        open the next on ``endpoint``, in one transaction, under the same claim. The new
        attempt does not count against the delivery's budget. None: the claim was lost."""
        number = claim.number + 1
        with self._engine.begin() as conn:
            if _cancelled_among(conn, {claim.broadcast_id}):
                return None  # no new POST after a cancel: the answer is recorded, cancelled
            moved = (
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == claim.delivery_id)
                    .where(deliveries.c.state == DeliveryState.SENDING.value)
                    .where(deliveries.c.attempts == claim.number)
                    .values(
                        attempts=number,
                        attempt_base=deliveries.c.attempt_base + 1,
                        lease_until=now + lease,
                        updated_at=now,
                    )
                ).rowcount
                == 1
            )
            if not moved:
                return None
            _close_attempt(conn, claim.attempt_id, answered, now, label=REROUTED)
            attempt_id = conn.execute(
                _OPEN_ATTEMPT,
                {
                    "p_id": claim.delivery_id,
                    "p_number": number,
                    "p_owner": worker,
                    "p_now": now,
                    "p_crid": client_request_id,
                    "p_endpoint": endpoint,
                },
            ).scalar_one()
        return replace(
            claim,
            number=number,
            previous_status=answered.http_status,
            attempt_base=claim.attempt_base + 1,
            attempt_id=attempt_id,
            client_request_id=client_request_id,
            lease_until=now + lease,
            endpoint=endpoint,
        )

    def unclaim(self, claim: Claim, now: datetime) -> bool:
        """Give a claim back before any request was made (its permit had expired): the
        delivery is ``queued`` again -- ``cancelled`` if its broadcast was cancelled meanwhile
        -- and the attempt that never happened is forgotten.

        Also when the lease sweep has meanwhile called the attempt ``unknown`` (its claim
        waited on a lock until its lease had run out): the sweep guessed the post may exist,
        the claim holder knows no request was made. Never once another claim took it."""
        lost_lease = (deliveries.c.state == DeliveryState.UNKNOWN.value) & (
            deliveries.c.last_error_code == LOST_LEASE
        )
        with self._engine.begin() as conn:
            cancelled = _cancelled_among(conn, {claim.broadcast_id})
            state = DeliveryState.CANCELLED if cancelled else DeliveryState.QUEUED
            changed = (
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == claim.delivery_id)
                    .where((deliveries.c.state == DeliveryState.SENDING.value) | lost_lease)
                    .where(deliveries.c.attempts == claim.number)
                    .values(
                        state=state.value,
                        attempts=claim.number - 1,
                        lease_owner=None,
                        lease_until=None,
                        updated_at=now,
                        # The sweep's guess goes with the attempt it guessed about.
                        last_error_code=case(
                            (lost_lease, None), else_=deliveries.c.last_error_code
                        ),
                        last_error_message=case(
                            (lost_lease, None), else_=deliveries.c.last_error_message
                        ),
                    )
                ).rowcount
                == 1
            )
            if changed:
                conn.execute(delete(attempts).where(attempts.c.id == claim.attempt_id))
        return changed

    def cancel_claim(self, claim: Claim, now: datetime) -> bool:
        """The gate refused the permit because the broadcast was cancelled after the claim: no
        request was made, the attempt is forgotten and the delivery is ``cancelled``."""
        with self._engine.begin() as conn:
            changed = (
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == claim.delivery_id)
                    .where(deliveries.c.state == DeliveryState.SENDING.value)
                    .where(deliveries.c.attempts == claim.number)
                    .values(
                        state=DeliveryState.CANCELLED.value,
                        attempts=claim.number - 1,
                        lease_owner=None,
                        lease_until=None,
                        next_attempt_at=None,
                        updated_at=now,
                    )
                ).rowcount
                == 1
            )
            if changed:
                conn.execute(delete(attempts).where(attempts.c.id == claim.attempt_id))
        return changed

    def finish(self, claim: Claim, outcome: Outcome, now: datetime) -> bool:
        """Record the attempt's outcome; False if the claim was lost meanwhile.

        A ``sent`` outcome is the truth whatever happened to the lease (Graph accepted the
        post), so it is recorded even over an ``unknown`` set by a lease sweep. So is any
        other answer to this very attempt: the sweep only guessed that its worker had died
        (it was frozen, or slow), and an answer beats a guess -- a 503 that comes late means
        the post does not exist, and the delivery is retried instead of left ``unknown``.
        """
        return self.finish_many([(claim, outcome, now)])[0]

    def reject_message(self, worker: str, reason: str, message: str, now: datetime) -> None:
        """Keep a poison message (truncated) and why it was refused, for the audit."""
        with self._engine.begin() as conn:
            conn.execute(
                insert(rejected_messages).values(
                    received_at=now, worker=worker, reason=reason[:2000], message=message[:2000]
                )
            )

    def suspend(self, delivery_id: str, reason: Outcome, now: datetime) -> bool:
        """Move a waiting delivery to ``reason.state`` (e.g. ``waiting_auth``), no attempt made."""
        with self._engine.begin() as conn:
            return (
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery_id)
                    .where(deliveries.c.state.in_([s.value for s in CLAIMABLE]))
                    .values(**_delivery_values(reason, now))
                ).rowcount
                == 1
            )

    def resume_waiting(self, tenant: str, now: datetime) -> list[DeliveryMessage]:
        """Send a tenant's ``waiting_auth`` deliveries back to ``queued`` (after a sign-in).

        A person acted, so each delivery's attempt budget starts again (as after an operator
        retry): a post Graph refused for missing consent does not count against it."""
        with self._engine.begin() as conn:
            rows = conn.execute(
                update(deliveries)
                .where(deliveries.c.tenant_id == tenant)
                .where(deliveries.c.state == DeliveryState.WAITING_AUTH.value)
                .values(
                    state=DeliveryState.QUEUED.value,
                    updated_at=now,
                    attempt_base=deliveries.c.attempts,
                )
                .returning(*MESSAGE_COLUMNS)
            ).all()
        return [message_of(row) for row in rows]

    def note(
        self,
        delivery_ids: Sequence[str],
        code: str,
        message: str,
        until: datetime | None,
        now: datetime,
    ) -> None:
        """Say why queued deliveries wait (e.g. a channel's daily quota) and until when."""
        if not delivery_ids:
            return
        with self._engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(delivery_ids)))
                .where(deliveries.c.state.in_([s.value for s in CLAIMABLE]))
                .values(
                    last_error_code=code,
                    last_error_message=message,
                    next_attempt_at=until,
                    updated_at=now,
                )
            )

    def waiting_by_tenant(self) -> dict[str, int]:
        """How many deliveries wait for each tenant's sign-in."""
        query = (
            select(deliveries.c.tenant_id, func.count())
            .where(deliveries.c.state == DeliveryState.WAITING_AUTH.value)
            .group_by(deliveries.c.tenant_id)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return {tenant: int(n) for tenant, n in conn.execute(query).all()}

    def settle_expired_leases(
        self, now: datetime, *, retry: bool = False, limit: int = 1000
    ) -> tuple[int, list[DeliveryMessage]]:
        """Deliveries whose worker died mid-attempt (lease over, still ``sending``) become
        ``unknown`` — or ``retrying`` with THREADCAST_AMBIGUOUS=retry, returned for
        re-queueing. Returns (how many settled, the messages to re-queue)."""
        query = (
            select(*MESSAGE_COLUMNS, deliveries.c.attempts)
            .where(deliveries.c.state == DeliveryState.SENDING.value)
            .where(deliveries.c.lease_until < now)
            .limit(limit)
            # A row another transaction holds (a claim or outcome of a host that dropped off
            # the network mid-commit) is left for a later run: waiting on it would stall
            # every scheduler job behind this one. (SQLite has no row locks: no clause.)
            .with_for_update(skip_locked=True)
        )
        settled, again = 0, []
        with self._engine.begin() as conn:
            rows = conn.execute(query).all()
            # A cancelled broadcast's delivery is not retried: it is cancelled.
            cancelled = _cancelled_among(conn, {row[1] for row in rows}) if retry else set()
            for row in rows:
                stop = row[1] in cancelled
                if _settle_lost_lease(conn, row[0], row.attempts, now, retry, cancelled=stop):
                    settled += 1
                    if retry and not stop:
                        again.append(message_of(row[:5]))
        return settled, again

    def stale_waiting(
        self, updated_before: datetime, after_id: str = "", limit: int = 1000
    ) -> list[DeliveryMessage]:
        """``queued``/``retrying`` deliveries untouched since ``updated_before``, by id: the
        candidates for an orphan check (their Redis side may have been lost)."""
        query = (
            select(*MESSAGE_COLUMNS)
            .where(deliveries.c.state.in_([s.value for s in CLAIMABLE]))
            .where(deliveries.c.updated_at < updated_before)
            .where(deliveries.c.id > after_id)
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [message_of(row) for row in conn.execute(query).all()]

    def message(self, broadcast_id: str) -> StoredMessage | None:
        """The broadcast's message as stored once for all its deliveries (None: no such
        broadcast): content, its type, its send time, its parts, whether it is personal."""
        query = select(
            broadcasts.c.content,
            broadcasts.c.content_type,
            broadcasts.c.send_at,
            broadcasts.c.parts,
            broadcasts.c.personal,
        ).where(broadcasts.c.id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredMessage(
            row.content,
            ContentType(row.content_type),
            row.send_at,
            MessageParts.from_json(row.parts),
            bool(row.personal),
        )


def _delivery_values(outcome: Outcome, now: datetime) -> dict[str, object]:
    values: dict[str, object] = {
        "state": outcome.state.value,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
        "next_attempt_at": outcome.next_attempt_at,
        "last_status": outcome.http_status,
        "last_error_code": outcome.error_code,
        "last_error_message": outcome.error_message,
        "last_request_id": outcome.request_id,
    }
    if outcome.state is DeliveryState.SENT:
        values["sent_at"] = now
        values["message_id"] = outcome.message_id
    return values


def _close_attempt(
    conn: Connection, attempt_id: int, outcome: Outcome, now: datetime, label: str | None = None
) -> None:
    conn.execute(
        _CLOSE_ATTEMPT,
        {
            "p_attempt": attempt_id,
            "p_now": now,
            "p_outcome": label or outcome.state.value,
            "p_status": outcome.http_status,
            "p_request": outcome.request_id,
            "p_code": outcome.error_code,
            "p_message": outcome.error_message,
            "p_retry_after": outcome.retry_after,
            "p_latency": outcome.latency_ms,
            "p_message_id": outcome.message_id,
        },
    )


def _settle_lost_lease(
    conn: Connection,
    delivery_id: str,
    number: int,
    now: datetime,
    retry: bool = False,
    *,
    cancelled: bool = False,
) -> bool:
    outcome = Outcome(
        DeliveryState.CANCELLED
        if cancelled
        else DeliveryState.RETRYING
        if retry
        else DeliveryState.UNKNOWN,
        error_code=LOST_LEASE,
        error_message="the worker holding this delivery stopped mid-attempt; "
        "the post may or may not have reached Graph",
    )
    open_attempt = conn.execute(
        select(attempts.c.id)
        .where(attempts.c.delivery_id == delivery_id)
        .where(attempts.c.number == number)
    ).scalar()
    changed = (
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.state == DeliveryState.SENDING.value)
            .where(deliveries.c.attempts == number)
            .values(**_delivery_values(outcome, now))
        ).rowcount
        == 1
    )
    if changed and open_attempt is not None:
        _close_attempt(conn, open_attempt, outcome, now)
    return changed


def _claim(
    conn: Connection,
    delivery_id: str,
    worker: str,
    client_request_id: str,
    lease: timedelta,
    now: datetime,
    endpoint: str | None = None,
) -> Claim | Refusal:
    params = {
        "p_id": delivery_id,
        "p_owner": worker,
        "p_until": now + lease,
        "p_now": now,
        "p_due": now + EARLY_CLAIM,
    }
    row = conn.execute(_CLAIM, params).first()
    if row is None:
        return _refuse(conn, delivery_id, now)
    attempt_id = conn.execute(
        _OPEN_ATTEMPT,
        params | {"p_number": row.attempts, "p_crid": client_request_id, "p_endpoint": endpoint},
    ).scalar_one()
    return Claim(
        delivery_id,
        row.broadcast_id,
        row.tenant_id,
        row.group_id,
        row.channel_id,
        row.attempts,
        row.last_status,
        row.attempt_base,
        row.created_at,
        attempt_id,
        client_request_id,
        now + lease,
        endpoint,
        json.loads(row.variables) if row.variables else None,
    )


def _refuse(conn: Connection, delivery_id: str, now: datetime) -> Refusal:
    row = conn.execute(
        select(
            deliveries.c.state,
            deliveries.c.lease_until,
            deliveries.c.attempts,
            deliveries.c.next_attempt_at,
            deliveries.c.broadcast_id,
        ).where(deliveries.c.id == delivery_id)
    ).first()
    if row is None:
        return Refusal(None)
    state = DeliveryState(row.state)
    if state is DeliveryState.SENDING and row.lease_until is not None and row.lease_until < now:
        # Its holder died mid-attempt: the POST may have reached Graph, so it must not be
        # silently sent again.
        _settle_lost_lease(conn, delivery_id, row.attempts, now)
        return Refusal(DeliveryState.UNKNOWN)
    if state in CLAIMABLE and _cancelled_among(conn, {row.broadcast_id}):
        # Waiting when its broadcast was cancelled (an outcome recorded across the cancel):
        # it is cancelled now, never posted.
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.state == state.value)
            .values(state=DeliveryState.CANCELLED.value, next_attempt_at=None, updated_at=now)
        )
        return Refusal(DeliveryState.CANCELLED)
    if state in CLAIMABLE and row.next_attempt_at is not None:
        # Not due yet: a message that came back early (a batch Celery delivered again after
        # its worker died, an orphan sweep's re-publish) must not cut a backoff short.
        return Refusal(state, not_before=row.next_attempt_at)
    return Refusal(state, row.lease_until if state is DeliveryState.SENDING else None)


def _cancelled_among(conn: Connection, broadcast_ids: set[str]) -> set[str]:
    """Which of the broadcasts are cancelled, read under a share lock on their rows: a cancel
    (which updates the row) waits for this transaction, or this one reads it committed. So an
    outcome is either recorded before the cancel (which then cancels it, if still waiting)
    or sees it -- never neither. (SQLite: every writer is serialised by BEGIN IMMEDIATE.)"""
    if not broadcast_ids:
        return set()
    rows = conn.execute(
        select(broadcasts.c.id, broadcasts.c.cancelled_at)
        .where(broadcasts.c.id.in_(sorted(broadcast_ids)))
        .with_for_update(read=True)
    ).all()
    return {row.id for row in rows if row.cancelled_at is not None}


def _finish(
    conn: Connection, claim: Claim, outcome: Outcome, now: datetime, cancelled: bool = False
) -> DeliveryState | None:
    _close_attempt(conn, claim.attempt_id, outcome, now)  # what Graph answered, as judged
    if cancelled and outcome.state not in KEPT_AFTER_CANCEL:
        outcome = replace(outcome, state=DeliveryState.CANCELLED, next_attempt_at=None)
    params = {
        "p_id": claim.delivery_id,
        "p_state": outcome.state.value,
        "p_now": now,
        "p_next": outcome.next_attempt_at,
        "p_status": outcome.http_status,
        "p_code": outcome.error_code,
        "p_message": outcome.error_message,
        "p_request": outcome.request_id,
    }
    if outcome.state is DeliveryState.SENT:
        query, params["p_message_id"] = _FINISH_SENT, outcome.message_id
    else:
        query, params["p_number"] = _FINISH_OTHER, claim.number
    return outcome.state if conn.execute(query, params).rowcount == 1 else None


# The statements of the hot path, built once: building a statement costs more than SQLite
# takes to run it (about 0.1 ms each), and each delivery runs four.
_CLAIM = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("p_id"))
    # Not IN (...): an IN list is re-rendered on every execution ("expanding" parameters).
    .where(or_(*(deliveries.c.state == s.value for s in CLAIMABLE)))
    .where(
        or_(
            deliveries.c.next_attempt_at.is_(None),
            deliveries.c.next_attempt_at <= bindparam("p_due"),
        )
    )
    # Never a delivery of a cancelled broadcast (a primary-key lookup per claim).
    .where(
        select(broadcasts.c.cancelled_at)
        .where(broadcasts.c.id == deliveries.c.broadcast_id)
        .scalar_subquery()
        .is_(None)
    )
    .values(
        state=DeliveryState.SENDING.value,
        lease_owner=bindparam("p_owner"),
        lease_until=bindparam("p_until"),
        attempts=deliveries.c.attempts + 1,
        updated_at=bindparam("p_now"),
    )
    .returning(
        deliveries.c.broadcast_id,
        deliveries.c.tenant_id,
        deliveries.c.group_id,
        deliveries.c.channel_id,
        deliveries.c.attempts,
        deliveries.c.last_status,
        deliveries.c.attempt_base,
        deliveries.c.created_at,
        deliveries.c.variables,  # NULL unless its broadcast is personal
    )
)
_OPEN_ATTEMPT = (
    insert(attempts)
    .values(
        delivery_id=bindparam("p_id"),
        number=bindparam("p_number"),
        worker=bindparam("p_owner"),
        started_at=bindparam("p_now"),
        client_request_id=bindparam("p_crid"),
        endpoint=bindparam("p_endpoint"),
    )
    .returning(attempts.c.id)
)
_CLOSE_ATTEMPT = (
    update(attempts)
    .where(attempts.c.id == bindparam("p_attempt"))
    .values(
        finished_at=bindparam("p_now"),
        outcome=bindparam("p_outcome"),
        http_status=bindparam("p_status"),
        request_id=bindparam("p_request"),
        error_code=bindparam("p_code"),
        error_message=bindparam("p_message"),
        retry_after=bindparam("p_retry_after"),
        latency_ms=bindparam("p_latency"),
        message_id=bindparam("p_message_id"),
    )
)
_OUTCOME_VALUES: dict[str, object] = {
    "state": bindparam("p_state"),
    "lease_owner": None,
    "lease_until": None,
    "updated_at": bindparam("p_now"),
    "next_attempt_at": bindparam("p_next"),
    "last_status": bindparam("p_status"),
    "last_error_code": bindparam("p_code"),
    "last_error_message": bindparam("p_message"),
    "last_request_id": bindparam("p_request"),
}
# ``sent`` is the truth whatever happened to the lease (see DeliveryBook.finish).
_FINISH_SENT = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("p_id"))
    .where(deliveries.c.state != DeliveryState.SENT.value)
    .values(**_OUTCOME_VALUES, sent_at=bindparam("p_now"), message_id=bindparam("p_message_id"))
)
# Any other answer only by this claim, over its own ``sending`` or the lease sweep's guess.
_FINISH_OTHER = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("p_id"))
    .where(deliveries.c.attempts == bindparam("p_number"))
    .where(
        or_(
            deliveries.c.state == DeliveryState.SENDING.value,
            and_(
                deliveries.c.state == DeliveryState.UNKNOWN.value,
                deliveries.c.last_error_code == LOST_LEASE,
            ),
        )
    )
    .values(**_OUTCOME_VALUES)
)
