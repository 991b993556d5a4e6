"""Signed webhook events as the ledger keeps them: the webhook book (docs/WEBHOOKS.md).

An *event* is recorded once: ``(type, subject)`` is unique (the subject is a broadcast id, a
tenant and the moment its wait for a sign-in began, a schedule's occurrence), so a finder that
runs twice, or two schedulers around a change of leader, record it once. Recording it also
writes one *delivery* per endpoint subscribed to its type at that moment, ``pending`` and due
at once. The sender posts due deliveries, records every attempt, and moves each delivery to
``delivered`` (a 2xx), back to ``pending`` at its next time, or to ``failed`` (given up).
An endpoint's row keeps its failure streak; one failing long enough is *paused*: its
deliveries wait, untried, until an operator resumes it.

The finder's own bookkeeping lives here too: the broadcasts watched until every delivery is
settled (``webhook_broadcasts``), the tenants waiting for a sign-in now (``webhook_waits``).
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import (
    broadcasts,
    deliveries,
    schedule_occurrences,
    webhook_attempts,
    webhook_broadcasts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
    webhook_waits,
)
from threadcast.ledger.states import DeliveryState
from threadcast.webhooks import EventType


class WebhookState(enum.StrEnum):
    PENDING = "pending"  # to send (again) at next_attempt_at, unless its endpoint is paused
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up after every attempt


class AttemptOutcome(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # will be tried again
    GIVEN_UP = "given_up"  # failed, and it was the last attempt


#: Subscribers of an event type: the names of the endpoints that want it.
Subscribers = Callable[[EventType], Sequence[str]]
#: A position in the broadcasts' creation order: (created_at, id).
Cursor = tuple[datetime, str]


#: A position among missed occurrences: (recorded_at, schedule id, occurrence instant).
MissedCursor = tuple[datetime, str, datetime]


@dataclass(frozen=True)
class Missed:
    recorded_at: datetime
    schedule_id: str
    occurrence_at: datetime
    note: str

    @property
    def cursor(self) -> MissedCursor:
        return (self.recorded_at, self.schedule_id, self.occurrence_at)


@dataclass(frozen=True)
class NewEvent:
    type: EventType
    subject: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DueDelivery:
    event_id: str
    endpoint: str
    type: str
    created_at: datetime
    payload: str  # the event's data, JSON, as stored (the same bytes on every attempt)
    attempts: int  # made so far


@dataclass(frozen=True)
class AttemptResult:
    at: datetime
    delivered: bool
    http_status: int | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True)
class PauseRule:
    """An endpoint is paused after ``failures`` failed attempts in a row spanning ``after``."""

    failures: int
    after: timedelta


@dataclass(frozen=True)
class EndpointRecord:
    name: str
    consecutive_failures: int
    failing_since: datetime | None
    paused_at: datetime | None
    pause_reason: str | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    at: datetime
    outcome: str
    http_status: int | None
    error: str | None
    latency_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "http_status": self.http_status,
            "error": self.error,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
        }


@dataclass(frozen=True)
class DeliveryRecord:
    endpoint: str
    state: WebhookState
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    history: tuple[AttemptRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": _iso(self.delivered_at),
            "history": [a.to_json() for a in self.history],
        }


@dataclass(frozen=True)
class EventRecord:
    id: str
    type: str
    subject: str
    data: dict[str, Any]
    created_at: datetime
    deliveries: tuple[DeliveryRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
            "data": self.data,
            "deliveries": [d.to_json() for d in self.deliveries],
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def _read(engine: Engine) -> Connection:
    return engine.connect().execution_options(**{READ_ONLY: True})


#: Delivery states that may still change on their own: a broadcast with one is not settled.
UNSETTLED = frozenset(
    {
        DeliveryState.SCHEDULED,
        DeliveryState.QUEUED,
        DeliveryState.SENDING,
        DeliveryState.RETRYING,
        DeliveryState.WAITING_AUTH,
    }
)


class WebhookBook:
    """Events, their deliveries and attempts, endpoints' state; each write one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- recording events ----------------------------------------------------------------
    def announce(self, events: Iterable[NewEvent], subscribers: Subscribers, now: datetime) -> int:
        """Record each event not recorded before, with its deliveries; how many were new."""
        with self._engine.begin() as conn:
            return sum(_record(conn, event, subscribers, now) is not None for event in events)

    def announced(self, kind: EventType, subjects: Sequence[str]) -> set[str]:
        """Which of ``subjects`` have an event of ``kind`` already."""
        if not subjects:
            return set()
        query = select(webhook_events.c.subject).where(
            webhook_events.c.type == kind.value, webhook_events.c.subject.in_(list(subjects))
        )
        with _read(self._engine) as conn:
            return {row[0] for row in conn.execute(query)}

    # -- broadcasts watched until they settle --------------------------------------------
    def watch_high(self) -> datetime | None:
        """The newest creation time among watched broadcasts (None: nothing watched yet)."""
        with _read(self._engine) as conn:
            found: datetime | None = conn.execute(
                select(func.max(webhook_broadcasts.c.created_at))
            ).scalar()
        return found

    def watch_unsettled(self, limit: int = 10_000) -> int:
        """Start watching broadcasts that have deliveries still moving (the first run ever:
        broadcasts already settled before webhooks were set up are never announced)."""
        query = (
            select(deliveries.c.broadcast_id)
            .where(deliveries.c.state.in_([s.value for s in UNSETTLED]))
            .group_by(deliveries.c.broadcast_id)
            .limit(limit)
        )
        with self._engine.begin() as conn:
            ids = [row[0] for row in conn.execute(query)]
            return self._watch(conn, ids)

    def watch_new(self, after: Cursor, limit: int) -> list[Cursor]:
        """Watch the broadcasts created after ``after`` (up to ``limit``, in creation order)
        that are not watched yet; the positions read (the caller's next cursor)."""
        at, last_id = after
        query = (
            select(broadcasts.c.created_at, broadcasts.c.id)
            .where(
                or_(
                    broadcasts.c.created_at > at,
                    and_(broadcasts.c.created_at == at, broadcasts.c.id > last_id),
                )
            )
            .order_by(broadcasts.c.created_at, broadcasts.c.id)
            .limit(limit)
        )
        with _read(self._engine) as conn:
            seen = [(row.created_at, row.id) for row in conn.execute(query)]
            known = self._watched(conn, [bid for _, bid in seen])
        fresh = [bid for _, bid in seen if bid not in known]
        if fresh:
            with self._engine.begin() as conn:
                self._watch(conn, fresh)
        return seen

    def open_broadcasts(self, after: str, limit: int) -> list[str]:
        """Watched broadcasts not announced yet, by id after ``after`` (a round robin)."""
        query = (
            select(webhook_broadcasts.c.broadcast_id)
            .where(webhook_broadcasts.c.open == true(), webhook_broadcasts.c.broadcast_id > after)
            .order_by(webhook_broadcasts.c.broadcast_id)
            .limit(limit)
        )
        with _read(self._engine) as conn:
            return [row[0] for row in conn.execute(query)]

    def broadcast_facts(self, ids: Sequence[str]) -> dict[str, tuple[str, datetime, int]]:
        """Source, creation time and target count of each broadcast."""
        query = select(
            broadcasts.c.id, broadcasts.c.source, broadcasts.c.created_at, broadcasts.c.target_count
        ).where(broadcasts.c.id.in_(list(ids)))
        with _read(self._engine) as conn:
            return {
                row.id: (row.source, row.created_at, row.target_count)
                for row in conn.execute(query)
            }

    def top_errors(self, broadcast_id: str, limit: int = 5) -> list[tuple[str, str, int]]:
        """The broadcast's failed and unknown deliveries grouped by (state, error code), the
        largest groups first."""
        count = func.count().label("n")
        query = (
            select(deliveries.c.state, deliveries.c.last_error_code, count)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .where(deliveries.c.state.in_([DeliveryState.FAILED, DeliveryState.UNKNOWN]))
            .group_by(deliveries.c.state, deliveries.c.last_error_code)
            .order_by(count.desc(), deliveries.c.state, deliveries.c.last_error_code)
            .limit(limit)
        )
        with _read(self._engine) as conn:
            return [(row[0], row[1] or "unknown", int(row[2])) for row in conn.execute(query)]

    def settle_broadcast(
        self, broadcast_id: str, events: Sequence[NewEvent], subscribers: Subscribers, now: datetime
    ) -> int:
        """Record the settled broadcast's events and stop watching it, together."""
        with self._engine.begin() as conn:
            made = sum(_record(conn, event, subscribers, now) is not None for event in events)
            conn.execute(
                update(webhook_broadcasts)
                .where(webhook_broadcasts.c.broadcast_id == broadcast_id)
                .values(open=False, settled_at=now)
            )
            return made

    @staticmethod
    def _watched(conn: Connection, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        query = select(webhook_broadcasts.c.broadcast_id).where(
            webhook_broadcasts.c.broadcast_id.in_(list(ids))
        )
        return {row[0] for row in conn.execute(query)}

    def _watch(self, conn: Connection, ids: Sequence[str]) -> int:
        known = self._watched(conn, ids)
        fresh = [bid for bid in ids if bid not in known]
        if not fresh:
            return 0
        rows = conn.execute(
            select(broadcasts.c.id, broadcasts.c.created_at).where(broadcasts.c.id.in_(fresh))
        ).all()
        conn.execute(
            insert(webhook_broadcasts),
            [{"broadcast_id": r.id, "created_at": r.created_at, "open": True} for r in rows],
        )
        return len(rows)

    # -- tenants waiting for a sign-in ---------------------------------------------------
    def waiting_tenants(self) -> dict[str, int]:
        """Tenants with deliveries in ``waiting_auth``, and how many (the state's index)."""
        query = (
            select(deliveries.c.tenant_id, func.count())
            .where(deliveries.c.state == DeliveryState.WAITING_AUTH.value)
            .group_by(deliveries.c.tenant_id)
        )
        with _read(self._engine) as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def open_waits(self) -> dict[str, datetime]:
        with _read(self._engine) as conn:
            return {row[0]: row[1] for row in conn.execute(select(webhook_waits))}

    def begin_wait(
        self, tenant: str, event: NewEvent, subscribers: Subscribers, now: datetime
    ) -> bool:
        """A tenant's wait began: its event, and the episode it opens, together."""
        with self._engine.begin() as conn:
            if conn.execute(
                select(webhook_waits.c.tenant_id).where(webhook_waits.c.tenant_id == tenant)
            ).first():
                return False
            event_id = _record(conn, event, subscribers, now)
            if event_id is None:
                return False
            conn.execute(
                insert(webhook_waits).values(tenant_id=tenant, since=now, event_id=event_id)
            )
            return True

    def end_waits(self, tenants: Sequence[str]) -> None:
        """These tenants wait no more: a later wait is a new episode (a new event)."""
        if tenants:
            with self._engine.begin() as conn:
                conn.execute(delete(webhook_waits).where(webhook_waits.c.tenant_id.in_(tenants)))

    # -- missed schedule occurrences -----------------------------------------------------
    def missed_after(self, after: MissedCursor, limit: int) -> list[Missed]:
        """Occurrences recorded ``missed`` after ``after`` in (recorded at, schedule,
        occurrence) order, up to ``limit`` (the state's index)."""
        occ = schedule_occurrences
        recorded, schedule, at = after
        query = (
            select(occ.c.recorded_at, occ.c.schedule_id, occ.c.occurrence_at, occ.c.note)
            .where(occ.c.state == "missed", occ.c.recorded_at >= recorded)
            .where(
                or_(
                    occ.c.recorded_at > recorded,
                    occ.c.schedule_id > schedule,
                    and_(occ.c.schedule_id == schedule, occ.c.occurrence_at > at),
                )
            )
            .order_by(occ.c.recorded_at, occ.c.schedule_id, occ.c.occurrence_at)
            .limit(limit)
        )
        with _read(self._engine) as conn:
            return [Missed(r[0], r[1], r[2], r[3] or "") for r in conn.execute(query)]

    # -- sending -------------------------------------------------------------------------
    def endpoint(self, name: str) -> EndpointRecord | None:
        with _read(self._engine) as conn:
            row = conn.execute(
                select(webhook_endpoints).where(webhook_endpoints.c.name == name)
            ).first()
        return None if row is None else _endpoint(row)

    def endpoints(self) -> dict[str, EndpointRecord]:
        with _read(self._engine) as conn:
            return {row.name: _endpoint(row) for row in conn.execute(select(webhook_endpoints))}

    def due(self, endpoint: str, now: datetime, limit: int) -> list[DueDelivery]:
        """The endpoint's pending deliveries due by ``now``, the longest due first."""
        d, e = webhook_deliveries, webhook_events
        query = (
            select(d.c.event_id, d.c.attempts, e.c.type, e.c.created_at, e.c.payload)
            .join(e, e.c.id == d.c.event_id)
            .where(d.c.endpoint == endpoint, d.c.state == WebhookState.PENDING.value)
            .where(d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at, d.c.event_id)
            .limit(limit)
        )
        with _read(self._engine) as conn:
            return [
                DueDelivery(r.event_id, endpoint, r.type, r.created_at, r.payload, r.attempts)
                for r in conn.execute(query)
            ]

    def finish(
        self,
        item: DueDelivery,
        result: AttemptResult,
        next_attempt_at: datetime | None,
        rule: PauseRule,
    ) -> bool:
        """Record one attempt and its delivery's next state (``next_attempt_at`` None after a
        failure: given up), and the endpoint's streak; True if the endpoint is now paused."""
        number = item.attempts + 1
        if result.delivered:
            outcome = AttemptOutcome.DELIVERED
        else:
            given_up = next_attempt_at is None
            outcome = AttemptOutcome.GIVEN_UP if given_up else AttemptOutcome.FAILED
        with self._engine.begin() as conn:
            conn.execute(
                insert(webhook_attempts).values(
                    event_id=item.event_id,
                    endpoint=item.endpoint,
                    number=number,
                    at=result.at,
                    outcome=outcome.value,
                    http_status=result.http_status,
                    error=result.error,
                    latency_ms=result.latency_ms,
                )
            )
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.event_id == item.event_id)
                .where(webhook_deliveries.c.endpoint == item.endpoint)
                .where(webhook_deliveries.c.state == WebhookState.PENDING.value)
                .values(**_delivery_values(outcome, number, result, next_attempt_at))
            )
            return _streak(conn, item.endpoint, result, rule)

    def resume(self, name: str, now: datetime) -> tuple[bool, int]:
        """Unpause the endpoint and make its pending deliveries due now: (was it paused, how
        many pending)."""
        with self._engine.begin() as conn:
            row = conn.execute(
                select(webhook_endpoints).where(webhook_endpoints.c.name == name)
            ).first()
            was_paused = row is not None and row.paused_at is not None
            if row is not None:
                conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.name == name)
                    .values(
                        paused_at=None,
                        pause_reason=None,
                        consecutive_failures=0,
                        failing_since=None,
                        updated_at=now,
                    )
                )
            pending = conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.endpoint == name)
                .where(webhook_deliveries.c.state == WebhookState.PENDING.value)
                .values(next_attempt_at=now, updated_at=now)
            ).rowcount
            return was_paused, int(pending or 0)

    # -- what an operator sees -----------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """Deliveries per endpoint and state (every state present, zero where none)."""
        d = webhook_deliveries
        query = select(d.c.endpoint, d.c.state, func.count()).group_by(d.c.endpoint, d.c.state)
        found: dict[str, dict[str, int]] = {}
        with _read(self._engine) as conn:
            for endpoint, state, n in conn.execute(query):
                found.setdefault(endpoint, {s.value: 0 for s in WebhookState})[state] = int(n)
        return found

    def recent(self, limit: int, history: int = 10) -> list[EventRecord]:
        """The newest events, each with its deliveries and their latest attempts."""
        e, d, a = webhook_events, webhook_deliveries, webhook_attempts
        with _read(self._engine) as conn:
            rows = conn.execute(
                select(e).order_by(e.c.created_at.desc(), e.c.id.desc()).limit(limit)
            ).all()
            ids = [row.id for row in rows]
            per_event: dict[str, list[Any]] = {i: [] for i in ids}
            for row in conn.execute(select(d).where(d.c.event_id.in_(ids)).order_by(d.c.endpoint)):
                per_event[row.event_id].append(row)
            tries: dict[tuple[str, str], list[AttemptRecord]] = {}
            query = select(a).where(a.c.event_id.in_(ids)).order_by(a.c.number.desc())
            for row in conn.execute(query):
                kept = tries.setdefault((row.event_id, row.endpoint), [])
                if len(kept) < history:
                    kept.append(
                        AttemptRecord(
                            row.number,
                            row.at,
                            row.outcome,
                            row.http_status,
                            row.error,
                            row.latency_ms,
                        )
                    )
        return [
            EventRecord(
                row.id,
                row.type,
                row.subject,
                json.loads(row.payload),
                row.created_at,
                tuple(
                    _delivery(x, tuple(tries.get((row.id, x.endpoint), [])))
                    for x in per_event[row.id]
                ),
            )
            for row in rows
        ]

    def attempts(self, event_id: str, endpoint: str) -> list[AttemptRecord]:
        a = webhook_attempts
        query = (
            select(a)
            .where(a.c.event_id == event_id, a.c.endpoint == endpoint)
            .order_by(a.c.number, a.c.id)
        )
        with _read(self._engine) as conn:
            return [
                AttemptRecord(r.number, r.at, r.outcome, r.http_status, r.error, r.latency_ms)
                for r in conn.execute(query)
            ]


def _record(
    conn: Connection, event: NewEvent, subscribers: Subscribers, now: datetime
) -> str | None:
    """Insert the event and its deliveries unless (type, subject) exists; its id, or None."""
    found = conn.execute(
        select(webhook_events.c.id).where(
            webhook_events.c.type == event.type.value, webhook_events.c.subject == event.subject
        )
    ).first()
    if found is not None:
        return None
    event_id = new_event_id()
    payload = json.dumps(event.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    conn.execute(
        insert(webhook_events).values(
            id=event_id,
            type=event.type.value,
            subject=event.subject,
            payload=payload,
            created_at=now,
        )
    )
    names = list(dict.fromkeys(subscribers(event.type)))
    if names:
        conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "event_id": event_id,
                    "endpoint": name,
                    "state": WebhookState.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for name in names
            ],
        )
    return event_id


def _delivery_values(
    outcome: AttemptOutcome, number: int, result: AttemptResult, next_attempt_at: datetime | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "attempts": number,
        "last_attempt_at": result.at,
        "last_status": result.http_status,
        "last_error": result.error,
        "updated_at": result.at,
        "next_attempt_at": next_attempt_at,
    }
    if outcome is AttemptOutcome.DELIVERED:
        values |= {"state": WebhookState.DELIVERED.value, "delivered_at": result.at}
        values["next_attempt_at"] = None
    elif outcome is AttemptOutcome.GIVEN_UP:
        values["state"] = WebhookState.FAILED.value
    return values


def _streak(conn: Connection, name: str, result: AttemptResult, rule: PauseRule) -> bool:
    """Update the endpoint's failure streak after an attempt; pause it when the rule says so."""
    ep = webhook_endpoints
    row = conn.execute(select(ep).where(ep.c.name == name)).first()
    values: dict[str, Any] = {
        "last_attempt_at": result.at,
        "last_status": result.http_status,
        "last_error": result.error,
        "updated_at": result.at,
    }
    if result.delivered:
        values |= {"consecutive_failures": 0, "failing_since": None}
    else:
        failures = (row.consecutive_failures if row is not None else 0) + 1
        since = row.failing_since if row is not None and row.failing_since else result.at
        values |= {"consecutive_failures": failures, "failing_since": since}
        paused = row is not None and row.paused_at is not None
        if not paused and failures >= rule.failures and result.at - since >= rule.after:
            values["paused_at"] = result.at
            values["pause_reason"] = (
                f"{failures} failed attempts in a row since {since.isoformat()}; "
                f"last: {result.error or result.http_status}"
            )
    if row is None:
        values.setdefault("consecutive_failures", 0)
        conn.execute(insert(ep).values(name=name, **values))
    else:
        conn.execute(update(ep).where(ep.c.name == name).values(**values))
    return "paused_at" in values


def _endpoint(row: Any) -> EndpointRecord:
    return EndpointRecord(
        row.name,
        row.consecutive_failures,
        row.failing_since,
        row.paused_at,
        row.pause_reason,
        row.last_attempt_at,
        row.last_status,
        row.last_error,
    )


def _delivery(row: Any, history: tuple[AttemptRecord, ...]) -> DeliveryRecord:
    return DeliveryRecord(
        row.endpoint,
        WebhookState(row.state),
        row.attempts,
        row.next_attempt_at,
        row.last_attempt_at,
        row.last_status,
        row.last_error,
        row.delivered_at,
        history,
    )
