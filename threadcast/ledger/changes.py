"""Edits and recalls of a sent broadcast, as the ledger keeps them: the change book.

A *change* is one edit (a whole new message PATCHed over every message the broadcast
created) or the recall (a softDelete of each). It has a row of its own, numbered per
broadcast, and a row per delivery of the broadcast saying what became of that delivery's
message in this change (:class:`ItemState`); each PATCH or softDelete made is an attempt row.

One worker runs a change at a time, under a lease on its row (:meth:`ChangeBook.take`); a
later change of the same broadcast waits until no earlier one is held, so an old edit's
request in flight can never land after a newer one. A new change supersedes a running one
(what it had not done yet is left ``superseded``); a broadcast is recalled once, and never
edited after.

A delivery not yet sent when the change was made is ``not_sent``; if it is sent later, the
runner takes it in (:meth:`ChangeBook.sync`), and the change is done only once no delivery
of the broadcast can still be sent. A delivery sent by the seed's chatthreads endpoint has
no message id (Graph answered 204 with nothing): ``no_message_id``, never guessed.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from threadcast.contract import ContentType
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import (
    broadcast_changes,
    broadcasts,
    change_attempts,
    change_deliveries,
    deliveries,
)
from threadcast.ledger.states import DeliveryState
from threadcast.message import MessageParts


class ChangeKind(enum.StrEnum):
    EDIT = "edit"  # PATCH every message with a new one
    RECALL = "recall"  # softDelete every message


class ChangeState(enum.StrEnum):
    RUNNING = "running"  # work remains, or deliveries of the broadcast may still be sent
    DONE = "done"  # every delivery settled in it
    SUPERSEDED = "superseded"  # a later change of the broadcast replaced it


class ItemState(enum.StrEnum):
    """What became of one delivery's message in one change."""

    PENDING = "pending"  # to change (again, at next_attempt_at if set)
    IN_FLIGHT = "in_flight"  # its request was made; the answer is not recorded yet
    DONE = "done"  # Graph answered 2xx
    FAILED = "failed"  # Graph refused it for good, or the attempts ran out
    UNKNOWN = "unknown"  # no answer after every attempt: it may or may not have happened
    NO_MESSAGE_ID = "no_message_id"  # sent by chatthreads: Graph gave no id to change
    NOT_SENT = "not_sent"  # its delivery was not sent (yet): there is no message
    SUPERSEDED = "superseded"  # a later change came before this one reached it


#: Item states a change may still work on.
OPEN_ITEMS = frozenset({ItemState.PENDING, ItemState.IN_FLIGHT})
#: Delivery states that may still become ``sent`` on their own (a change waits for them).
UNSETTLED = frozenset(
    {
        DeliveryState.SCHEDULED,
        DeliveryState.QUEUED,
        DeliveryState.SENDING,
        DeliveryState.RETRYING,
        DeliveryState.WAITING_AUTH,
    }
)


@dataclass(frozen=True)
class NewChange:
    """A change as asked for: an edit's whole new message, or a recall (no message)."""

    kind: ChangeKind
    source: str
    content: str | None = None
    content_type: ContentType | None = None
    parts: MessageParts = field(default_factory=MessageParts)
    personal: bool = False


@dataclass(frozen=True)
class Made:
    change: ChangeInfo
    created: bool  # False: the same change was asked for before, and is returned again
    superseded: list[str]  # the running changes it replaced
    again: int = 0  # asked for again: its failed and unknown deliveries that go again

    def to_json(self) -> dict[str, Any]:
        return {
            **self.change.to_json(),
            "created": self.created,
            "superseded": list(self.superseded),
            "again": self.again,
        }


@dataclass(frozen=True)
class ChangeInfo:
    id: str
    broadcast_id: str
    number: int
    kind: ChangeKind
    state: ChangeState
    source: str
    created_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]  # every ItemState, zero where none

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "broadcast_id": self.broadcast_id,
            "number": self.number,
            "kind": self.kind.value,
            "state": self.state.value,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class ChangeMessage:
    """An edit's new message, as stored once for all its deliveries."""

    content: str
    content_type: ContentType
    parts: MessageParts
    personal: bool


@dataclass(frozen=True)
class ChangeItem:
    """One delivery's message to change, with what its request needs."""

    delivery_id: str
    tenant: str
    group: str
    channel: str
    message_id: str
    attempts: int
    variables: dict[str, str] | None


@dataclass(frozen=True)
class ItemResult:
    """What one attempt on an item ended in; ``state`` is where the item goes next."""

    delivery_id: str
    number: int  # the attempt's number
    client_request_id: str
    state: ItemState
    http_status: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    next_attempt_at: datetime | None = None
    outcome: str = ""  # the attempt row's outcome; the item state if empty


@dataclass(frozen=True)
class ChangeAttempt:
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    client_request_id: str
    outcome: str | None
    http_status: int | None
    request_id: str | None
    error_code: str | None
    error_message: str | None
    retry_after: float | None
    latency_ms: float | None


class Take(enum.Enum):
    """What :meth:`ChangeBook.take` found."""

    TAKEN = "taken"  # the caller runs it now
    FINISHED = "finished"  # done or superseded: nothing to run
    HELD = "held"  # another runner holds its lease
    BEHIND = "behind"  # an earlier change of the broadcast is still held: wait for it


def _read(engine: Engine) -> Connection:
    return engine.connect().execution_options(**{READ_ONLY: True})


class ChangeBook:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- the producer ------------------------------------------------------------------------
    def create(self, broadcast_id: str, change: NewChange, now: datetime) -> Made:
        """Record ``change`` of the broadcast with a row per delivery, in one transaction.

        Idempotent: a recall asked for again returns the broadcast's recall; an edit whose
        message equals the latest change's (an edit) returns that one. A new change
        supersedes the running ones (their pending deliveries become ``superseded``). An edit
        of a recalled broadcast is a ValidationError."""
        message = _message_json(change)
        with self._engine.begin() as conn:
            # Its row locked (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers): two
            # changes asked for at once are numbered one after the other.
            found = conn.execute(
                select(broadcasts.c.id).where(broadcasts.c.id == broadcast_id).with_for_update()
            ).first()
            if found is None:
                raise NotFoundError(f"no broadcast with id {broadcast_id!r}")
            latest = conn.execute(
                select(broadcast_changes)
                .where(broadcast_changes.c.broadcast_id == broadcast_id)
                .order_by(broadcast_changes.c.number.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.kind == ChangeKind.RECALL.value:
                if change.kind is ChangeKind.RECALL:
                    again = _again(conn, latest.id, now)
                    return Made(self._info(conn, _row(conn, latest.id)), False, [], again)
                raise ValidationError(
                    "broadcast_id",
                    broadcast_id,
                    f"was recalled (change {latest.id}): a recalled broadcast is not edited",
                )
            if (
                latest is not None
                and change.kind is ChangeKind.EDIT
                and _stored_message_json(latest) == message
            ):
                again = _again(conn, latest.id, now)
                return Made(self._info(conn, _row(conn, latest.id)), False, [], again)
            superseded = [
                str(row.id)
                for row in conn.execute(
                    select(broadcast_changes.c.id)
                    .where(broadcast_changes.c.broadcast_id == broadcast_id)
                    .where(broadcast_changes.c.state == ChangeState.RUNNING.value)
                )
            ]
            if superseded:
                _supersede(conn, superseded, now)
            change_id = str(uuid.uuid4())
            conn.execute(
                insert(broadcast_changes).values(
                    id=change_id,
                    broadcast_id=broadcast_id,
                    number=(latest.number if latest is not None else 0) + 1,
                    kind=change.kind.value,
                    content=change.content,
                    content_type=None if change.content_type is None else change.content_type.value,
                    parts=change.parts.to_json() if change.parts.beyond_body else None,
                    personal=change.personal,
                    source=change.source,
                    state=ChangeState.RUNNING.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            _insert_items(conn, change_id, broadcast_id, now)
            return Made(self._info(conn, _row(conn, change_id)), True, superseded)

    def variables(self, broadcast_id: str) -> Iterator[tuple[int, dict[str, str]]]:
        """A personal broadcast's deliveries' variables, in their order: (seq, variables)."""
        query = (
            select(deliveries.c.seq, deliveries.c.variables)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .order_by(deliveries.c.seq)
        )
        with _read(self._engine) as conn:
            for seq, raw in conn.execute(query):
                yield int(seq), {} if raw is None else json.loads(raw)

    def recall_of(self, broadcast_id: str) -> str | None:
        """The broadcast's recall, if it was recalled (a retry must not post it again)."""
        query = (
            select(broadcast_changes.c.id)
            .where(broadcast_changes.c.broadcast_id == broadcast_id)
            .where(broadcast_changes.c.kind == ChangeKind.RECALL.value)
        )
        with _read(self._engine) as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    # -- status ------------------------------------------------------------------------------
    def get(self, change_id: str) -> ChangeInfo:
        with _read(self._engine) as conn:
            row = conn.execute(
                select(broadcast_changes).where(broadcast_changes.c.id == change_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no edit or recall with id {change_id!r}")
            return self._info(conn, row)

    def of_broadcast(self, broadcast_id: str) -> list[ChangeInfo]:
        """The broadcast's changes, oldest first, with their counts."""
        with _read(self._engine) as conn:
            rows = conn.execute(
                select(broadcast_changes)
                .where(broadcast_changes.c.broadcast_id == broadcast_id)
                .order_by(broadcast_changes.c.number)
            ).all()
            return [self._info(conn, row) for row in rows]

    def items(self, change_id: str) -> dict[str, ItemState]:
        """Every delivery's state in the change (delivery id -> state)."""
        query = select(change_deliveries.c.delivery_id, change_deliveries.c.state).where(
            change_deliveries.c.change_id == change_id
        )
        with _read(self._engine) as conn:
            return {str(d): ItemState(s) for d, s in conn.execute(query).all()}

    def errors(self, change_id: str, limit: int = 5) -> list[tuple[str, str, str | None, int]]:
        """Its failed and unknown items per (state, error code): (state, code, an example
        message, how many), most frequent first."""
        query = (
            select(
                change_deliveries.c.state,
                change_deliveries.c.last_error_code,
                func.min(change_deliveries.c.last_error_message),
                func.count(),
            )
            .where(change_deliveries.c.change_id == change_id)
            .where(change_deliveries.c.state.in_([ItemState.FAILED.value, ItemState.UNKNOWN.value]))
            .group_by(change_deliveries.c.state, change_deliveries.c.last_error_code)
            .order_by(func.count().desc())
            .limit(limit)
        )
        with _read(self._engine) as conn:
            return [(str(s), str(c or "-"), m, int(n)) for s, c, m, n in conn.execute(query)]

    def attempts(self, change_id: str, delivery_id: str) -> list[ChangeAttempt]:
        query = (
            select(change_attempts)
            .where(change_attempts.c.change_id == change_id)
            .where(change_attempts.c.delivery_id == delivery_id)
            .order_by(change_attempts.c.id)
        )
        with _read(self._engine) as conn:
            return [
                ChangeAttempt(
                    r.number,
                    r.worker,
                    r.started_at,
                    r.finished_at,
                    r.client_request_id,
                    r.outcome,
                    r.http_status,
                    r.request_id,
                    r.error_code,
                    r.error_message,
                    r.retry_after,
                    r.latency_ms,
                )
                for r in conn.execute(query)
            ]

    def rows(self, broadcast_id: str) -> list[tuple[str, int, str, str, str, str | None]]:
        """Every (change id, number, kind, delivery id, item state, last error code) of the
        broadcast, for its export."""
        query = (
            select(
                broadcast_changes.c.id,
                broadcast_changes.c.number,
                broadcast_changes.c.kind,
                change_deliveries.c.delivery_id,
                change_deliveries.c.state,
                change_deliveries.c.last_error_code,
            )
            .join(change_deliveries, change_deliveries.c.change_id == broadcast_changes.c.id)
            .where(broadcast_changes.c.broadcast_id == broadcast_id)
            .order_by(broadcast_changes.c.number)
        )
        with _read(self._engine) as conn:
            found = conn.execute(query).all()
        return [(str(a), int(b), str(c), str(d), str(e), f) for a, b, c, d, e, f in found]

    def states_of(
        self, broadcast_id: str, delivery_id: str, change_id: str | None = None
    ) -> list[tuple[str, int, str, str]]:
        """The delivery's (change id, number, kind, item state) in each change of the
        broadcast (or in ``change_id`` only), oldest change first."""
        query = (
            select(
                broadcast_changes.c.id,
                broadcast_changes.c.number,
                broadcast_changes.c.kind,
                change_deliveries.c.state,
            )
            .join(change_deliveries, change_deliveries.c.change_id == broadcast_changes.c.id)
            .where(broadcast_changes.c.broadcast_id == broadcast_id)
            .where(change_deliveries.c.delivery_id == delivery_id)
            .order_by(broadcast_changes.c.number)
        )
        if change_id is not None:
            query = query.where(broadcast_changes.c.id == change_id)
        with _read(self._engine) as conn:
            found = conn.execute(query).all()
        return [(str(c), int(n), str(k), str(s)) for c, n, k, s in found]

    def running(self, now: datetime) -> list[str]:
        """Running changes no live runner holds (for the sweep that starts them again)."""
        query = (
            select(broadcast_changes.c.id)
            .where(broadcast_changes.c.state == ChangeState.RUNNING.value)
            .where(
                or_(
                    broadcast_changes.c.lease_until.is_(None),
                    broadcast_changes.c.lease_until < now,
                )
            )
            .order_by(broadcast_changes.c.created_at)
        )
        with _read(self._engine) as conn:
            return [str(found) for found in conn.execute(query).scalars()]

    # -- the runner --------------------------------------------------------------------------
    def message(self, change_id: str) -> ChangeMessage | None:
        """An edit's new message (None for a recall)."""
        query = select(
            broadcast_changes.c.content,
            broadcast_changes.c.content_type,
            broadcast_changes.c.parts,
            broadcast_changes.c.personal,
        ).where(broadcast_changes.c.id == change_id)
        with _read(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None or row.content is None:
            return None
        return ChangeMessage(
            row.content,
            ContentType(row.content_type),
            MessageParts.from_json(row.parts),
            bool(row.personal),
        )

    def take(self, change_id: str, runner: str, now: datetime, until: datetime) -> Take:
        """Hold the change's lease until ``until`` if it runs and nobody holds it, and no
        earlier change of its broadcast is held. On taking it, whatever a lost runner left
        in flight goes back to pending (its attempt is recorded ``abandoned``): an edit or a
        recall made twice leaves the message as made once."""
        with self._engine.begin() as conn:
            row = conn.execute(
                select(broadcast_changes).where(broadcast_changes.c.id == change_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no edit or recall with id {change_id!r}")
            if row.state != ChangeState.RUNNING.value:
                return Take.FINISHED
            if row.runner not in (None, runner) and row.lease_until and row.lease_until > now:
                return Take.HELD
            earlier = conn.execute(
                select(func.count())
                .select_from(broadcast_changes)
                .where(broadcast_changes.c.broadcast_id == row.broadcast_id)
                .where(broadcast_changes.c.number < row.number)
                .where(broadcast_changes.c.lease_until > now)
            ).scalar()
            if earlier:
                return Take.BEHIND
            # Conditional: of two runners racing here (PostgreSQL reads without a lock), one
            # takes it.
            free = or_(
                broadcast_changes.c.runner.is_(None),
                broadcast_changes.c.lease_until.is_(None),
                broadcast_changes.c.lease_until <= now,
            )
            taken = conn.execute(
                update(broadcast_changes)
                .where(broadcast_changes.c.id == change_id)
                .where(broadcast_changes.c.state == ChangeState.RUNNING.value)
                .where(free)
                .values(runner=runner, lease_until=until, updated_at=now)
            ).rowcount
            if not taken:
                return Take.HELD
            if row.runner != runner:
                self._abandon(conn, change_id, now)
            return Take.TAKEN

    @staticmethod
    def _abandon(conn: Connection, change_id: str, now: datetime) -> None:
        in_flight = [
            str(d)
            for d in conn.execute(
                select(change_deliveries.c.delivery_id)
                .where(change_deliveries.c.change_id == change_id)
                .where(change_deliveries.c.state == ItemState.IN_FLIGHT.value)
            ).scalars()
        ]
        if not in_flight:
            return
        conn.execute(
            update(change_attempts)
            .where(change_attempts.c.change_id == change_id)
            .where(change_attempts.c.delivery_id.in_(in_flight))
            .where(change_attempts.c.finished_at.is_(None))
            .values(outcome="abandoned", finished_at=now)
        )
        conn.execute(
            update(change_deliveries)
            .where(change_deliveries.c.change_id == change_id)
            .where(change_deliveries.c.delivery_id.in_(in_flight))
            .values(state=ItemState.PENDING.value, next_attempt_at=None, updated_at=now)
        )

    def renew(self, change_id: str, runner: str, now: datetime, until: datetime) -> bool:
        """Extend the lease; False if the change stopped running or another runner has it."""
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    update(broadcast_changes)
                    .where(broadcast_changes.c.id == change_id)
                    .where(broadcast_changes.c.runner == runner)
                    .where(broadcast_changes.c.state == ChangeState.RUNNING.value)
                    .values(lease_until=until, updated_at=now)
                ).rowcount
            )

    def resign(self, change_id: str, runner: str, now: datetime) -> None:
        """Give the lease up (the runner stops; another may take it at once)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(broadcast_changes)
                .where(broadcast_changes.c.id == change_id)
                .where(broadcast_changes.c.runner == runner)
                .values(runner=None, lease_until=None, updated_at=now)
            )

    def sync(self, change_id: str, now: datetime) -> int:
        """Take in the deliveries sent since the change was made (``not_sent`` ->
        ``pending``, or ``no_message_id``); returns how many."""
        sent = (
            select(deliveries.c.id)
            .where(deliveries.c.id == change_deliveries.c.delivery_id)
            .where(deliveries.c.state == DeliveryState.SENT.value)
        )
        with_id = sent.where(deliveries.c.message_id.is_not(None))
        moved = 0
        with self._engine.begin() as conn:
            for query, state in ((with_id, ItemState.PENDING), (sent, ItemState.NO_MESSAGE_ID)):
                moved += conn.execute(
                    update(change_deliveries)
                    .where(change_deliveries.c.change_id == change_id)
                    .where(change_deliveries.c.state == ItemState.NOT_SENT.value)
                    .where(query.exists())
                    .values(state=state.value, updated_at=now)
                ).rowcount
        return moved

    def due(
        self, change_id: str, now: datetime, limit: int, skip: Iterable[str] = ()
    ) -> list[ChangeItem]:
        """Pending items whose time has come, in the deliveries' order, but for the tenants
        in ``skip`` (the runner's full ones: their items must not crowd the others')."""
        query = (
            select(
                deliveries.c.id,
                deliveries.c.tenant_id,
                deliveries.c.group_id,
                deliveries.c.channel_id,
                deliveries.c.message_id,
                change_deliveries.c.attempts,
                deliveries.c.variables,
            )
            .join(deliveries, deliveries.c.id == change_deliveries.c.delivery_id)
            .where(change_deliveries.c.change_id == change_id)
            .where(change_deliveries.c.state == ItemState.PENDING.value)
            .where(
                or_(
                    change_deliveries.c.next_attempt_at.is_(None),
                    change_deliveries.c.next_attempt_at <= now,
                )
            )
            .order_by(deliveries.c.seq)
            .limit(limit)
        )
        skipped = list(skip)
        if skipped:
            query = query.where(deliveries.c.tenant_id.not_in(skipped))
        with _read(self._engine) as conn:
            return [
                ChangeItem(
                    str(r.id),
                    str(r.tenant_id),
                    str(r.group_id),
                    str(r.channel_id),
                    str(r.message_id),
                    int(r.attempts),
                    None if r.variables is None else json.loads(r.variables),
                )
                for r in conn.execute(query)
            ]

    def next_due(self, change_id: str) -> datetime | None:
        """When its earliest pending item is due (None: none pends)."""
        query = (
            select(func.min(change_deliveries.c.next_attempt_at))
            .where(change_deliveries.c.change_id == change_id)
            .where(change_deliveries.c.state == ItemState.PENDING.value)
        )
        with _read(self._engine) as conn:
            value = conn.execute(query).scalar()
        return value if isinstance(value, datetime) else None

    def start(
        self,
        change_id: str,
        runner: str,
        started: list[tuple[str, int, str]],
        now: datetime,
    ) -> None:
        """Each (delivery id, attempt number, client request id) becomes ``in_flight`` with
        an open attempt row, all in one transaction."""
        self.write(change_id, runner, started, [], now)

    def record(self, change_id: str, results: list[ItemResult], now: datetime) -> None:
        """The answers, each closing its attempt row and moving its item, in one
        transaction."""
        self.write(change_id, "", [], results, now)

    def write(
        self,
        change_id: str,
        runner: str,
        started: list[tuple[str, int, str]],
        results: list[ItemResult],
        now: datetime,
    ) -> None:
        """Requests made (as :meth:`start`) and then answers (as :meth:`record`), in one
        transaction: a runner writes a batch of both at once. An item a later change
        superseded stays ``superseded`` unless an answer says its request happened."""
        if not started and not results:
            return
        with self._engine.begin() as conn:
            if started:
                _start(conn, change_id, runner, started, now)
            for result in results:
                _record(conn, change_id, result, now)

    def complete(self, change_id: str, now: datetime) -> bool:
        """Mark the change done if nothing of it is open and no delivery of its broadcast
        can still be sent or was sent without being taken in; True if it is done (now or
        before). One conditional statement, so that a delivery committed ``sent`` meanwhile,
        or the same change asked for again, is never overtaken (one snapshot on PostgreSQL
        too)."""
        with self._engine.begin() as conn:
            row = conn.execute(
                select(broadcast_changes.c.state, broadcast_changes.c.broadcast_id).where(
                    broadcast_changes.c.id == change_id
                )
            ).one()
            if row.state != ChangeState.RUNNING.value:
                return True
            mine = change_deliveries.c.change_id == change_id
            open_item = select(change_deliveries.c.delivery_id).where(
                mine, change_deliveries.c.state.in_([s.value for s in OPEN_ITEMS])
            )
            waiting = [s.value for s in UNSETTLED] + [DeliveryState.SENT.value]
            untaken = (
                select(change_deliveries.c.delivery_id)
                .join(deliveries, deliveries.c.id == change_deliveries.c.delivery_id)
                .where(mine, change_deliveries.c.state == ItemState.NOT_SENT.value)
                .where(deliveries.c.state.in_(waiting))
            )
            done = conn.execute(
                update(broadcast_changes)
                .where(broadcast_changes.c.id == change_id)
                .where(broadcast_changes.c.state == ChangeState.RUNNING.value)
                .where(~open_item.exists(), ~untaken.exists())
                .values(state=ChangeState.DONE.value, finished_at=now, updated_at=now)
            ).rowcount
            return bool(done)

    def reopen_edit(self, broadcast_id: str, now: datetime) -> str | None:
        """Deliveries of the broadcast go out again (an operator's retry): its latest change,
        if an edit that is done, runs again, so that what they post is edited too. Returns
        its id (None: no such edit)."""
        with self._engine.begin() as conn:
            latest = conn.execute(
                select(broadcast_changes.c.id, broadcast_changes.c.kind, broadcast_changes.c.state)
                .where(broadcast_changes.c.broadcast_id == broadcast_id)
                .order_by(broadcast_changes.c.number.desc())
                .limit(1)
            ).first()
            if latest is None or latest.kind != ChangeKind.EDIT.value:
                return None
            if latest.state == ChangeState.DONE.value:
                conn.execute(
                    update(broadcast_changes)
                    .where(broadcast_changes.c.id == latest.id)
                    .values(state=ChangeState.RUNNING.value, finished_at=None, updated_at=now)
                )
            return None if latest.state == ChangeState.SUPERSEDED.value else str(latest.id)

    # -- shared ------------------------------------------------------------------------------
    @staticmethod
    def _info(conn: Connection, row: Any) -> ChangeInfo:
        found = {
            str(state): int(n)
            for state, n in conn.execute(
                select(change_deliveries.c.state, func.count())
                .where(change_deliveries.c.change_id == row.id)
                .group_by(change_deliveries.c.state)
            )
        }
        return ChangeInfo(
            id=str(row.id),
            broadcast_id=str(row.broadcast_id),
            number=int(row.number),
            kind=ChangeKind(row.kind),
            state=ChangeState(row.state),
            source=str(row.source),
            created_at=row.created_at,
            finished_at=row.finished_at,
            counts={state.value: found.get(state.value, 0) for state in ItemState},
        )


def _message_json(change: NewChange) -> str | None:
    if change.kind is ChangeKind.RECALL or change.content is None:
        return None
    return json.dumps(
        [
            change.content,
            None if change.content_type is None else change.content_type.value,
            change.parts.to_json() if change.parts.beyond_body else None,
            change.personal,
        ]
    )


def _stored_message_json(row: Any) -> str | None:
    if row.kind != ChangeKind.EDIT.value or row.content is None:
        return None
    return json.dumps([row.content, row.content_type, row.parts, bool(row.personal)])


def _start(
    conn: Connection,
    change_id: str,
    runner: str,
    started: list[tuple[str, int, str]],
    now: datetime,
) -> None:
    conn.execute(
        insert(change_attempts),
        [
            {
                "change_id": change_id,
                "delivery_id": delivery_id,
                "number": number,
                "worker": runner,
                "started_at": now,
                "client_request_id": request_id,
            }
            for delivery_id, number, request_id in started
        ],
    )
    conn.execute(
        update(change_deliveries)
        .where(change_deliveries.c.change_id == change_id)
        .where(change_deliveries.c.delivery_id.in_([d for d, _, _ in started]))
        .where(change_deliveries.c.state == ItemState.PENDING.value)  # not one superseded
        .values(
            state=ItemState.IN_FLIGHT.value,
            attempts=change_deliveries.c.attempts + 1,
            updated_at=now,
        )
    )


def _record(conn: Connection, change_id: str, result: ItemResult, now: datetime) -> None:
    conn.execute(
        update(change_attempts)
        .where(change_attempts.c.change_id == change_id)
        .where(change_attempts.c.delivery_id == result.delivery_id)
        .where(change_attempts.c.client_request_id == result.client_request_id)
        .values(
            finished_at=now,
            outcome=result.outcome or result.state.value,
            http_status=result.http_status,
            request_id=result.request_id,
            error_code=result.error_code,
            error_message=result.error_message,
            retry_after=result.retry_after,
            latency_ms=result.latency_ms,
        )
    )
    conn.execute(
        update(change_deliveries)
        .where(change_deliveries.c.change_id == change_id)
        .where(change_deliveries.c.delivery_id == result.delivery_id)
        .where(change_deliveries.c.state.in_([ItemState.IN_FLIGHT.value, ItemState.PENDING.value]))
        .values(
            state=result.state.value,
            next_attempt_at=result.next_attempt_at,
            last_status=result.http_status,
            last_error_code=result.error_code,
            last_error_message=result.error_message,
            last_request_id=result.request_id,
            updated_at=now,
        )
    )


def _row(conn: Connection, change_id: str) -> Any:
    return conn.execute(select(broadcast_changes).where(broadcast_changes.c.id == change_id)).one()


def _again(conn: Connection, change_id: str, now: datetime) -> int:
    """A change asked for again: its failed and unknown deliveries go again with a fresh
    budget of attempts, and the change runs until they are done."""
    moved = conn.execute(
        update(change_deliveries)
        .where(change_deliveries.c.change_id == change_id)
        .where(change_deliveries.c.state.in_([ItemState.FAILED.value, ItemState.UNKNOWN.value]))
        .values(state=ItemState.PENDING.value, attempts=0, next_attempt_at=None, updated_at=now)
    ).rowcount
    if moved:
        conn.execute(
            update(broadcast_changes)
            .where(broadcast_changes.c.id == change_id)
            .values(state=ChangeState.RUNNING.value, finished_at=None, updated_at=now)
        )
    return int(moved)


def _supersede(conn: Connection, change_ids: list[str], now: datetime) -> None:
    conn.execute(
        update(broadcast_changes)
        .where(broadcast_changes.c.id.in_(change_ids))
        .values(state=ChangeState.SUPERSEDED.value, finished_at=now, updated_at=now)
    )
    conn.execute(
        update(change_deliveries)
        .where(change_deliveries.c.change_id.in_(change_ids))
        .where(change_deliveries.c.state.in_([ItemState.PENDING.value, ItemState.NOT_SENT.value]))
        .values(state=ItemState.SUPERSEDED.value, updated_at=now)
    )


def _insert_items(conn: Connection, change_id: str, broadcast_id: str, now: datetime) -> None:
    """A row per delivery of the broadcast: ``pending`` where a sent message has an id to
    change, ``no_message_id`` where it was sent without one, ``not_sent`` otherwise."""
    sent = deliveries.c.state == DeliveryState.SENT.value
    state = case(
        (and_(sent, deliveries.c.message_id.is_not(None)), literal(ItemState.PENDING.value)),
        (sent, literal(ItemState.NO_MESSAGE_ID.value)),
        else_=literal(ItemState.NOT_SENT.value),
    )
    rows = select(
        literal(change_id),
        deliveries.c.id,
        state,
        literal(0),
        literal(now, type_=change_deliveries.c.updated_at.type),
    ).where(deliveries.c.broadcast_id == broadcast_id)
    conn.execute(
        insert(change_deliveries).from_select(
            ["change_id", "delivery_id", "state", "attempts", "updated_at"], rows
        )
    )
