"""Read-only views for the HTTP API and the metrics: delivery pages and state counts.

Pages are keyset-paginated on ``seq`` (the delivery's position in its broadcast): a page
costs the same however deep it is, and deliveries changing state between two pages neither
repeat nor vanish from the listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import attempts, deliveries
from threadcast.ledger.states import DeliveryState

MAX_PAGE = 1000


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    seq: int
    tenant: str
    group: str
    channel: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error_code: str | None
    last_error_message: str | None
    last_request_id: str | None
    updated_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class DeliveryPage:
    rows: list[DeliveryRow]
    next_after: int | None  # pass as ``after`` for the next page; None: this was the last


@dataclass(frozen=True)
class StateCount:
    state: str
    tenant: str
    count: int


_COLUMNS = (
    deliveries.c.id,
    deliveries.c.seq,
    deliveries.c.tenant_id,
    deliveries.c.group_id,
    deliveries.c.channel_id,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.last_status,
    deliveries.c.last_error_code,
    deliveries.c.last_error_message,
    deliveries.c.last_request_id,
    deliveries.c.updated_at,
    deliveries.c.sent_at,
)


class DeliveryQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def page(
        self,
        broadcast_id: str,
        *,
        states: Sequence[DeliveryState] = (),
        tenant: str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> DeliveryPage:
        """Deliveries of a broadcast in ``seq`` order after ``after``, optionally only some
        states and one tenant. An unknown broadcast gives an empty page (check it first)."""
        limit = max(1, min(limit, MAX_PAGE))
        query = select(*_COLUMNS).where(deliveries.c.broadcast_id == broadcast_id)
        if states:
            query = query.where(deliveries.c.state.in_([s.value for s in states]))
        if tenant is not None:
            query = query.where(deliveries.c.tenant_id == tenant)
        if after is not None:
            query = query.where(deliveries.c.seq > after)
        # One extra row says whether another page follows, without a COUNT.
        query = query.order_by(deliveries.c.seq).limit(limit + 1)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = [_row(r) for r in conn.execute(query).all()]
        rows = found[:limit]
        return DeliveryPage(rows, rows[-1].seq if len(found) > limit else None)

    def counts_by_state_and_tenant(self) -> list[StateCount]:
        """Every delivery in the ledger counted per (state, tenant): one grouped query."""
        query = select(deliveries.c.state, deliveries.c.tenant_id, func.count()).group_by(
            deliveries.c.state, deliveries.c.tenant_id
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [StateCount(s, t, int(n)) for s, t, n in conn.execute(query).all()]

    def backlog_by_team(self) -> dict[tuple[str, str], int]:
        """Deliveries waiting to go (``queued`` or ``retrying``: in the gate, or about to be)
        per (tenant, group): what a new broadcast queues behind (``send --dry-run``)."""
        waiting = (DeliveryState.QUEUED.value, DeliveryState.RETRYING.value)
        query = (
            select(deliveries.c.tenant_id, deliveries.c.group_id, func.count())
            .where(deliveries.c.state.in_(waiting))
            .group_by(deliveries.c.tenant_id, deliveries.c.group_id)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return {(t, g): int(n) for t, g, n in conn.execute(query).all()}

    def attempts_by_endpoint(self, broadcast_id: str) -> dict[str, dict[str, int]]:
        """The broadcast's attempts per Graph endpoint and outcome (``open``: in flight;
        endpoint ``unknown``: recorded before the ledger kept it)."""
        query = (
            select(attempts.c.endpoint, attempts.c.outcome, func.count())
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .group_by(attempts.c.endpoint, attempts.c.outcome)
        )
        found: dict[str, dict[str, int]] = {}
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            for endpoint, outcome, count in conn.execute(query).all():
                by_outcome = found.setdefault(endpoint or "unknown", {})
                by_outcome[outcome or "open"] = int(count)
        return found

    def remaining_by_team(self, broadcast_id: str) -> dict[tuple[str, str], int]:
        """The broadcast's deliveries not yet at an end and still moving on their own
        (``scheduled``, ``queued``, ``sending``, ``retrying``) per (tenant, group): what the
        rate limits of each scope still have to let through (``status --watch``'s time left)."""
        moving = [
            DeliveryState.SCHEDULED.value,
            DeliveryState.QUEUED.value,
            DeliveryState.SENDING.value,
            DeliveryState.RETRYING.value,
        ]
        query = (
            select(deliveries.c.tenant_id, deliveries.c.group_id, func.count())
            .where(deliveries.c.broadcast_id == broadcast_id)
            .where(deliveries.c.state.in_(moving))
            .group_by(deliveries.c.tenant_id, deliveries.c.group_id)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return {(t, g): int(n) for t, g, n in conn.execute(query).all()}


def _row(r: Any) -> DeliveryRow:  # a Row of _COLUMNS
    return DeliveryRow(
        r.id,
        r.seq,
        r.tenant_id,
        r.group_id,
        r.channel_id,
        DeliveryState(r.state),
        r.attempts,
        r.last_status,
        r.last_error_code,
        r.last_error_message,
        r.last_request_id,
        r.updated_at,
        r.sent_at,
    )
