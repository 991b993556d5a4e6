"""A broadcast taken apart for the console (and any API client): its deliveries per tenant
and state, its failures grouped by Graph error code with examples, one delivery's attempt
log, its progress with the time left the limits allow, and how many deliveries a retry or a
cancel would touch -- counted with the very filters the action applies, changing nothing.

Everything here only reads the ledger. The progress is :func:`producer.status.estimate`'s
(the one ``threadcast status --watch`` prints) with the ceiling the configured limits put on
the broadcast's remaining deliveries, and :func:`producer.status.waits` says what waits and
why; retry counts validate their input as :meth:`producer.client.Producer.retry` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select

from producer import status
from producer.client import retry_state
from producer.reports import BroadcastReport, Estimate
from threadcast import ids
from threadcast.dispatch.limits import Limits
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger import DeliveryQueries, DeliveryState, Ledger
from threadcast.ledger.audit import ATTEMPT_COLUMNS, DELIVERY_COLUMNS
from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import attempts, deliveries
from threadcast.ledger.states import CANCELLABLE
from threadcast.text import check_text

#: Failures: what a person looks at (``retrying`` deliveries go again on their own).
FAILURE_STATES = (DeliveryState.FAILED, DeliveryState.UNKNOWN)
EXAMPLES = 3  # deliveries shown per error group
NO_CODE = "-"  # as change reports write a failure without a code


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class TenantCounts(_View):
    tenant: str
    total: int
    counts: dict[str, int] = Field(description="deliveries per state; every state is present")


class ErrorExample(_View):
    delivery_id: str
    tenant: str
    channel: str
    http_status: int | None
    error_message: str | None
    request_id: str | None = Field(description="Graph's request-id of its last attempt")
    updated_at: datetime


class ErrorGroup(_View):
    state: str = Field(description="failed or unknown")
    error_code: str = Field(description="Graph's error code ('-': none was given)")
    count: int
    examples: list[ErrorExample] = Field(description=f"at most {EXAMPLES} of them")


class Progress(_View):
    """Where the broadcast stands and how long it has left (polled by the console)."""

    broadcast_id: str
    total: int
    counts: dict[str, int] = Field(description="deliveries per state; every state is present")
    settled: int
    done: bool
    estimate: Estimate = Field(
        description="the time left from the configured limits and what waits (rate: null, "
        "measured by whoever polls)"
    )
    waits: str = Field(description="what waits and why, in one line; empty: nothing waits")


class Breakdown(_View):
    broadcast_id: str
    per_tenant: list[TenantCounts] = Field(description="by tenant id")
    errors: list[ErrorGroup] = Field(description="failed and unknown deliveries, largest first")


class AttemptLine(_View):
    number: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    client_request_id: str | None
    outcome: str | None = Field(description="the attempt's result; null: in flight")
    http_status: int | None
    request_id: str | None = Field(description="Graph's request-id")
    error_code: str | None
    error_message: str | None
    retry_after: float | None
    latency_ms: float | None
    message_id: str | None
    endpoint: str | None


class DeliveryLog(_View):
    broadcast_id: str
    delivery_id: str
    tenant: str
    group: str
    channel: str
    state: str
    attempts: list[AttemptLine] = Field(description="every attempt, oldest first")
    last_error_code: str | None
    last_error_message: str | None
    last_request_id: str | None
    message_id: str | None
    sent_at: datetime | None
    updated_at: datetime


class Touches(_View):
    """How many deliveries an action would touch now; nothing was changed."""

    broadcast_id: str
    action: str = Field(description="retry or cancel")
    count: int
    states: list[str] = Field(description="the states it takes deliveries from")


def progress(queries: DeliveryQueries, limits: Limits, report: BroadcastReport) -> Progress:
    ceiling = status.limit_rate(limits, queries.remaining_by_team(report.broadcast_id))
    return Progress(
        broadcast_id=report.broadcast_id,
        total=report.total,
        counts=report.counts,
        settled=report.settled,
        done=report.done,
        estimate=status.estimate(report, None, ceiling, datetime.now(UTC)),
        waits=status.waits(report),
    )


def breakdown(ledger: Ledger, broadcast_id: str) -> Breakdown:
    by_tenant = (
        select(deliveries.c.tenant_id, deliveries.c.state, func.count())
        .where(deliveries.c.broadcast_id == broadcast_id)
        .group_by(deliveries.c.tenant_id, deliveries.c.state)
    )
    groups = (
        select(deliveries.c.state, deliveries.c.last_error_code, func.count())
        .where(deliveries.c.broadcast_id == broadcast_id)
        .where(deliveries.c.state.in_([s.value for s in FAILURE_STATES]))
        .group_by(deliveries.c.state, deliveries.c.last_error_code)
    )
    tenants: dict[str, dict[str, int]] = {}
    errors: list[ErrorGroup] = []
    with ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        for tenant, state, count in conn.execute(by_tenant).all():
            tenants.setdefault(tenant, {s.value: 0 for s in DeliveryState})[state] = int(count)
        found = sorted(conn.execute(groups).all(), key=lambda r: (-int(r[2]), r[0], r[1] or ""))
        for state, code, count in found:
            examples = conn.execute(_examples(broadcast_id, state, code)).all()
            errors.append(
                ErrorGroup(
                    state=state,
                    error_code=code or NO_CODE,
                    count=int(count),
                    examples=[ErrorExample(**row._asdict()) for row in examples],
                )
            )
    return Breakdown(
        broadcast_id=broadcast_id,
        per_tenant=[
            TenantCounts(tenant=t, total=sum(c.values()), counts=c)
            for t, c in sorted(tenants.items())
        ],
        errors=errors,
    )


def _examples(broadcast_id: str, state: str, code: str | None) -> Select[Any]:
    query = (
        select(
            deliveries.c.id.label("delivery_id"),
            deliveries.c.tenant_id.label("tenant"),
            deliveries.c.channel_id.label("channel"),
            deliveries.c.last_status.label("http_status"),
            deliveries.c.last_error_message.label("error_message"),
            deliveries.c.last_request_id.label("request_id"),
            deliveries.c.updated_at,
        )
        .where(deliveries.c.broadcast_id == broadcast_id)
        .where(deliveries.c.state == state)
    )
    if code is None:
        query = query.where(deliveries.c.last_error_code.is_(None))
    else:
        query = query.where(deliveries.c.last_error_code == code)
    return query.order_by(deliveries.c.seq).limit(EXAMPLES)


def delivery_log(ledger: Ledger, broadcast_id: str, delivery_id: str) -> DeliveryLog:
    """One delivery of the broadcast with every attempt made for it (as the export has it)."""
    delivery_id = ids.guid("delivery_id", delivery_id)
    head = select(*DELIVERY_COLUMNS).where(
        deliveries.c.broadcast_id == broadcast_id, deliveries.c.id == delivery_id
    )
    lines = (
        select(*ATTEMPT_COLUMNS)
        .where(attempts.c.delivery_id == delivery_id)
        .order_by(attempts.c.number)
    )
    with ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        row = conn.execute(head).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id!r} in broadcast {broadcast_id!r}")
        found = [AttemptLine(**r._asdict()) for r in conn.execute(lines).all()]
    d = row._asdict()
    return DeliveryLog(
        broadcast_id=d["broadcast"],
        delivery_id=d["delivery"],
        tenant=d["tenant"],
        group=d["group"],
        channel=d["channel"],
        state=d["state"],
        attempts=found,
        last_error_code=d["last_error_code"],
        last_error_message=d["last_error_message"],
        last_request_id=d["last_request_id"],
        message_id=d["message_id"],
        sent_at=d["sent_at"],
        updated_at=d["updated_at"],
    )


def retry_count(
    ledger: Ledger,
    broadcast_id: str,
    states: Sequence[DeliveryState | str],
    *,
    error_code: str | None = None,
    tenant: str | None = None,
) -> Touches:
    """How many deliveries :meth:`Producer.retry` with these arguments would re-queue now
    (the ledger's requeue filter: state, last error code, tenant), refusing what it refuses."""
    wanted = [retry_state(f"states[{i}]", s) for i, s in enumerate(states)]
    if not wanted:
        raise ValidationError("states", [], "must name at least one state")
    if error_code is not None:
        check_text("error_code", error_code)
    if tenant is not None:
        tenant = ids.guid("tenant", tenant)
    recalled = ledger.changes.recall_of(broadcast_id)
    if recalled is not None:
        raise ValidationError(
            "broadcast_id",
            broadcast_id,
            f"was recalled (change {recalled}): its deliveries are not sent again",
        )
    query = _count(broadcast_id, wanted)
    if error_code is not None:
        query = query.where(deliveries.c.last_error_code == error_code)
    if tenant is not None:
        query = query.where(deliveries.c.tenant_id == tenant)
    return Touches(
        broadcast_id=broadcast_id,
        action="retry",
        count=_scalar(ledger, query),
        states=[s.value for s in wanted],
    )


def cancel_count(ledger: Ledger, broadcast_id: str) -> Touches:
    """How many deliveries a cancel would stop now (those not yet sent nor settled)."""
    wanted = sorted(CANCELLABLE)
    return Touches(
        broadcast_id=broadcast_id,
        action="cancel",
        count=_scalar(ledger, _count(broadcast_id, wanted)),
        states=[s.value for s in wanted],
    )


def _count(broadcast_id: str, states: Sequence[DeliveryState]) -> Select[Any]:
    return (
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.broadcast_id == broadcast_id)
        .where(deliveries.c.state.in_([s.value for s in states]))
    )


def _scalar(ledger: Ledger, query: Select[Any]) -> int:
    with ledger.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        return int(conn.execute(query).scalar_one())
