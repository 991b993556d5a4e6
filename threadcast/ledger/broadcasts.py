"""The producer's and the status views' side of the ledger: broadcasts and their counts."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from threadcast.contract import Broadcast, ContentType, Delivery, DeliveryMessage
from threadcast.errors import NotFoundError, ValidationError
from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import attempts, broadcasts, deliveries
from threadcast.ledger.states import CANCELLABLE, CLAIMABLE, REROUTED, DeliveryState
from threadcast.message import MessageParts

_INSERT_CHUNK = 10_000  # SQLite rows per executemany
# SQLite's page cache while it writes a broadcast's deliveries, in KiB (the default is 2 MiB):
# their primary key is a random UUID, and with a cache smaller than that index every insert
# reads a page back (1,000,000 rows: 16.6 s of SQLite at 2 MiB, 8.9 s at 32 MiB).
_SQLITE_WRITE_CACHE_KIB = 32 * 1024
_PAGE = 10_000  # deliveries read back per query for publishing
#: What a retry may send back to ``queued``: deliveries that stopped without being sent.
#: Any other state is on its way or done: re-queueing it would send a scheduled one early,
#: cut a retry's Retry-After short, or give a queued one a second entry in the gate.
RETRYABLE = frozenset(
    {
        DeliveryState.FAILED,
        DeliveryState.UNKNOWN,
        DeliveryState.CANCELLED,
        DeliveryState.WAITING_AUTH,
    }
)

#: The columns a DeliveryMessage is made of, in message_of's order.
MESSAGE_COLUMNS = (
    deliveries.c.id,
    deliveries.c.broadcast_id,
    deliveries.c.tenant_id,
    deliveries.c.group_id,
    deliveries.c.channel_id,
)


#: The columns _insert writes (the others are NULL or their server default), in row order;
#: a personal broadcast's rows also carry their variables.
_INSERTED = (
    "id",
    "broadcast_id",
    "seq",
    "tenant_id",
    "group_id",
    "channel_id",
    "state",
    "attempts",
    "created_at",
    "updated_at",
)
_VARIABLES = "variables"
_STAGE = "threadcast_stage"  # SQLite: a temporary table a chunk of rows waits in
_STAGED = ("id", "seq", "tenant_id", "group_id", "channel_id")  # what differs between rows
# A delivery row: _STAGED's values, then (a personal broadcast's) its variables as JSON.
_Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Shared:
    """What every delivery row of one broadcast has in common, bound as the driver binds it."""

    broadcast_id: str
    state: str
    stamp: Any  # created_at and updated_at
    personal: bool = False  # each row carries its variables (a sixth value)

    @property
    def inserted(self) -> tuple[str, ...]:
        return (*_INSERTED, _VARIABLES) if self.personal else _INSERTED

    @property
    def staged(self) -> tuple[str, ...]:
        return (*_STAGED, _VARIABLES) if self.personal else _STAGED


def _insert_deliveries(conn: Connection, shared: _Shared, rows: Iterable[_Row]) -> None:
    """Write many delivery rows, (id, seq, tenant, group, channel[, variables]), inside ``conn``'s
    transaction, below SQLAlchemy's per-row parameter handling: PostgreSQL by COPY, SQLite a
    chunk at a time through a staging table."""
    if conn.dialect.name == "postgresql":
        _copy_deliveries(conn, shared, rows)
        return
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_WRITE_CACHE_KIB}")
    try:
        _stage_deliveries(conn, shared, rows)
    finally:  # the pooled connection goes back to its usual size (and memory)
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or 0)}")


def _copy_deliveries(conn: Connection, shared: _Shared, rows: Iterable[_Row]) -> None:
    # The server inserts while we read on: the rows stream, no chunk waits for another.
    statement = f"COPY {deliveries.name} ({', '.join(shared.inserted)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    b, state, stamp = shared.broadcast_id, shared.state, shared.stamp
    if isinstance(stamp, datetime):  # as text once, not formatted twice per row (~2 s CPU)
        stamp = stamp.isoformat()
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            if shared.personal:
                for did, seq, tenant, group, channel, variables in rows:
                    copy.write_row(
                        (did, b, seq, tenant, group, channel, state, 0, stamp, stamp, variables)
                    )
            else:  # the plain loop, unchanged: no per-row test on the hot path
                for did, seq, tenant, group, channel in rows:
                    copy.write_row((did, b, seq, tenant, group, channel, state, 0, stamp, stamp))
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy(conn, statement, exc) from exc


def _as_sqlalchemy(conn: Connection, statement: str, exc: Exception) -> StatementError:
    """A driver's error as SQLAlchemy reports any other statement's (IntegrityError, …)."""
    return DBAPIError.instance(
        statement, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
    )


def _stage_deliveries(conn: Connection, shared: _Shared, rows: Iterable[_Row]) -> None:
    """SQLite: each chunk goes into a temporary table (cheap: no index), then a mover thread
    copies it into deliveries with one INSERT … SELECT, which SQLite runs without the GIL:
    the B-trees (most of the write) are built while this thread reads and validates the next
    chunk. 1,000,000 rows: 14.3 s -> 11.5 s. The same connection, never used by both at
    once; the temporary table goes with a rollback."""
    staged = shared.staged
    conn.exec_driver_sql(f"CREATE TEMP TABLE {_STAGE} ({', '.join(staged)})")
    stage = f"INSERT INTO temp.{_STAGE} VALUES ({', '.join('?' * len(staged))})"  # noqa: S608
    mover = _Mover(conn, shared)
    iterator = iter(rows)
    try:
        while chunk := list(islice(iterator, _INSERT_CHUNK)):
            mover.wait()
            conn.exec_driver_sql(stage, chunk)
            mover.start()
    except BaseException:
        mover.join()  # nothing may run on the connection while the transaction rolls back
        raise
    mover.wait()
    conn.exec_driver_sql(f"DROP TABLE temp.{_STAGE}")


class _Mover:
    """Moves the staged chunk into deliveries on a thread of its own (one per chunk)."""

    def __init__(self, conn: Connection, shared: _Shared) -> None:
        self._conn, self._driver = conn, conn.connection.driver_connection
        names = ", ".join(shared.inserted)
        variables = f", {_VARIABLES}" if shared.personal else ""
        self._move = (
            f"INSERT INTO {deliveries.name} ({names}) SELECT id, ?, seq, tenant_id, group_id, "  # noqa: S608
            f"channel_id, ?, 0, ?, ?{variables} FROM temp.{_STAGE}"
        )
        self._params = (shared.broadcast_id, shared.state, shared.stamp, shared.stamp)
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="threadcast-ledger-mover")
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait(self) -> None:
        """Until the chunk is moved; its failure (a repeated delivery id, …) raised here."""
        self.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise _as_sqlalchemy(self._conn, self._move, error) from error

    def _run(self) -> None:
        assert self._driver is not None
        try:
            self._driver.execute(self._move, self._params)
            self._driver.execute(f"DELETE FROM temp.{_STAGE}")  # noqa: S608
        except Exception as exc:  # handed to the caller's thread by wait()
            self._error = exc


# A page is a range of seq, not "the next N after": without statistics on the rows just
# written (PostgreSQL right after the commit) a planner fetches and sorts every later row of
# the broadcast for each LIMIT page (1,000,000: 53 s). For the same reason the state is
# checked by the caller, not here.
_PAGE_QUERY = (
    "SELECT id, broadcast_id, tenant_id, group_id, channel_id, state FROM deliveries"
    " WHERE broadcast_id = {0} AND seq >= {0} AND seq < {0} ORDER BY seq"
)


def _page(conn: Connection, broadcast_id: str, start: int) -> list[tuple[Any, ...]]:
    """The broadcast's deliveries numbered start to start + _PAGE, as the driver's tuples:
    a SQLAlchemy Row each costs more than the read (1,000,000 rows: 2.0 s -> 1.3 s)."""
    statement = _PAGE_QUERY.format("?" if conn.dialect.paramstyle == "qmark" else "%s")
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(statement, (broadcast_id, start, start + _PAGE))
        return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy(conn, statement, exc) from exc
    finally:
        cursor.close()


def _rows(batch: Iterable[Delivery], written: list[str]) -> Iterator[_Row]:
    """(id, seq, tenant, group, channel) of each delivery, numbered in order; notes each id."""
    for seq, d in enumerate(batch):
        written.append(d.id)
        t = d.target
        yield d.id, seq, t.tenant, t.group, t.channel


def _personal_rows(
    batch: Iterable[Delivery], written: list[str], digest: VariablesDigest
) -> Iterator[_Row]:
    """As :func:`_rows`, each row with its target's variables as JSON (None: none given)."""
    for seq, d in enumerate(batch):
        written.append(d.id)
        t = d.target
        variables = variables_json(t.variables)
        digest.add(d.id, variables)
        yield d.id, seq, t.tenant, t.group, t.channel, variables


def variables_json(variables: Mapping[str, str] | None) -> str | None:
    """A target's variables as the ledger stores them (None: none)."""
    if not variables:
        return None
    return json.dumps(dict(variables), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class VariablesDigest:
    """What a personal broadcast's deliveries are filled in with, as one value whatever their
    order (a sum of one hash per delivery): a re-send with other variables under the same id is
    a different broadcast. Kept as one integer, not per target."""

    def __init__(self) -> None:
        self._sum = 0

    def add(self, delivery_id: str, variables: str | None) -> None:
        one = hashlib.sha256(f"{delivery_id}\x00{variables or ''}".encode()).digest()
        self._sum = (self._sum + int.from_bytes(one)) % (1 << 256)

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


def message_of(row: Sequence[Any]) -> DeliveryMessage:
    delivery, broadcast, tenant, group, channel = row
    return DeliveryMessage(delivery, broadcast, tenant, group, channel)


@dataclass(frozen=True)
class BroadcastInfo:
    id: str
    content_type: ContentType
    source: str
    send_at: datetime | None
    created_at: datetime
    target_count: int
    parts: MessageParts = field(default_factory=MessageParts)  # all beside its body
    personal: bool = False  # its content (and subject) filled in per delivery


@dataclass(frozen=True)
class ErrorLine:
    delivery_id: str
    tenant: str
    channel: str
    http_status: int | None
    error_code: str | None
    error_message: str | None
    request_id: str | None
    at: datetime


@dataclass(frozen=True)
class WaitLine:
    """Deliveries of a broadcast that wait for a reason: a retry time, a quota, …"""

    state: str
    reason: str  # the error code that holds them (e.g. channel_daily_quota)
    message: str | None  # what it means (one of theirs)
    count: int
    until: datetime | None  # the latest time one of them may go again


@dataclass(frozen=True)
class Recorded:
    created: bool  # False: the same broadcast was recorded before (nothing written now)
    deliveries: int  # how many the submission holds


def fingerprint(broadcast: Broadcast, delivery_ids: Iterable[str], variables: str = "") -> str:
    """What makes two submissions "the same broadcast" for idempotent re-sending: the
    content, its type, the send time and the set of delivery ids (in any order); and, for a
    message with parts or personal text, its parts and its deliveries' variables
    (``variables``: :class:`VariablesDigest`). A body-only broadcast's fingerprint is what it
    was before parts existed."""
    digest = hashlib.sha256()
    send_at = broadcast.send_at.isoformat() if broadcast.send_at else ""
    for part in (broadcast.content_type.value, send_at, broadcast.content):
        digest.update(part.encode())
        digest.update(b"\x00")
    ordered = sorted(delivery_ids)
    for start in range(0, len(ordered), _INSERT_CHUNK):  # joined: one update per chunk
        digest.update("".join(ordered[start : start + _INSERT_CHUNK]).encode())
    parts = broadcast.parts.to_json()
    if parts is not None:
        digest.update(b"\x00parts\x00" + parts.encode())
    if broadcast.personal:
        digest.update(b"\x00personal\x00" + variables.encode())
    return digest.hexdigest()


class BroadcastBook:
    """Writes broadcasts with all their deliveries at once; reads them back for status."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, broadcast: Broadcast, batch: Iterable[Delivery], now: datetime) -> bool:
        """:meth:`record`; True if it wrote the broadcast."""
        return self.record(broadcast, batch, now).created

    def record(self, broadcast: Broadcast, batch: Iterable[Delivery], now: datetime) -> Recorded:
        """Record the broadcast and its deliveries in one transaction, reading ``batch``
        once as the rows are written, a chunk at a time (of each row only its id is kept,
        for the fingerprint).

        ``batch`` holds each delivery once (Broadcast.deliveries and the producer collapse
        duplicates; a repeated id is an IntegrityError). Anything ``batch`` raises rolls
        everything back. When the same broadcast was recorded before, nothing is written
        (created False); a different broadcast under the same id is refused. Either way
        ``batch`` is read to its end: the fingerprint is over all of it.
        """
        batch = iter(batch)
        try:
            with self._engine.begin() as conn:
                stored = self._fingerprint(conn, broadcast.id)
                if stored is None:
                    return Recorded(True, self._insert(conn, broadcast, batch, now))
        except IntegrityError:
            # A concurrent writer recorded the same id first (PostgreSQL: our broadcast row
            # waited for its commit, so ``batch`` is untouched): judge it the same way.
            with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                stored = self._fingerprint(conn, broadcast.id)
            if stored is None:
                raise
        return Recorded(False, self._judge(broadcast, batch, stored))

    @staticmethod
    def _fingerprint(conn: Connection, broadcast_id: str) -> str | None:
        found = conn.execute(
            select(broadcasts.c.fingerprint).where(broadcasts.c.id == broadcast_id)
        ).scalar()
        return None if found is None else str(found)

    @staticmethod
    def _judge(broadcast: Broadcast, batch: Iterator[Delivery], stored: str) -> int:
        """The submission's size if it is the broadcast recorded under its id; else refused."""
        delivery_ids: list[str] = []
        variables = VariablesDigest()
        for d in batch:
            delivery_ids.append(d.id)
            if broadcast.personal:
                variables.add(d.id, variables_json(d.target.variables))
        if fingerprint(broadcast, delivery_ids, variables.hexdigest()) != stored:
            raise ValidationError(
                "broadcast_id", broadcast.id, "is already used by a different broadcast"
            )
        return len(delivery_ids)

    @staticmethod
    def _insert(
        conn: Connection, broadcast: Broadcast, batch: Iterator[Delivery], now: datetime
    ) -> int:
        """Write the broadcast, then its deliveries as ``batch`` yields them; the broadcast's
        fingerprint and count are known only then (the row comes first: deliveries
        reference it)."""
        due = broadcast.send_at is None or broadcast.send_at <= now
        state = DeliveryState.QUEUED if due else DeliveryState.SCHEDULED
        conn.execute(
            insert(broadcasts).values(
                id=broadcast.id,
                fingerprint="",
                content=broadcast.content,
                content_type=broadcast.content_type.value,
                source=broadcast.source,
                send_at=broadcast.send_at,
                target_count=0,
                created_at=now,
                # Stored once here, never per delivery (only a personal one's variables are).
                parts=broadcast.parts.to_json(),
                personal=broadcast.personal,
            )
        )
        # The timestamp as the column type binds it (once, not once per row and column).
        column_type = deliveries.c.created_at.type.dialect_impl(conn.dialect)
        process = column_type.bind_processor(conn.dialect)
        stamp = process(now) if process else now
        written: list[str] = []  # the ids, for the fingerprint (each is the row's own str)
        variables = VariablesDigest()
        shared = _Shared(broadcast.id, state.value, stamp, broadcast.personal)
        rows = (
            _personal_rows(batch, written, variables)
            if broadcast.personal
            else _rows(batch, written)
        )
        _insert_deliveries(conn, shared, rows)
        conn.execute(
            update(broadcasts)
            .where(broadcasts.c.id == broadcast.id)
            .values(
                fingerprint=fingerprint(broadcast, written, variables.hexdigest()),
                target_count=len(written),
            )
        )
        return len(written)

    def queued_messages(self, broadcast_id: str) -> Iterator[DeliveryMessage]:
        """The messages of every delivery of the broadcast still waiting in ``queued``, in
        order, a page at a time: each page is a short read (no transaction stays open while
        the caller publishes) and memory does not grow with the broadcast."""
        queued = DeliveryState.QUEUED.value
        for start in range(0, self._last_seq(broadcast_id) + 1, _PAGE):
            with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                rows = _page(conn, broadcast_id, start)
            for delivery, broadcast, tenant, group, channel, state in rows:
                if state == queued:
                    yield DeliveryMessage(delivery, broadcast, tenant, group, channel)

    def _last_seq(self, broadcast_id: str) -> int:
        """The broadcast's highest delivery number (-1: none); they run from 0 without gaps."""
        query = select(func.max(deliveries.c.seq)).where(deliveries.c.broadcast_id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            last = conn.execute(query).scalar()
        return -1 if last is None else int(last)

    def cancel(self, broadcast_id: str, now: datetime) -> int:
        """Stop everything of the broadcast not yet sent; a POST in flight finishes and is
        recorded (any answer but ``sent`` or ``unknown`` is recorded ``cancelled``), and no
        delivery of it is claimed again. Returns how many deliveries were cancelled now."""
        with self._engine.begin() as conn:
            self._require(conn, broadcast_id)
            conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .where(broadcasts.c.cancelled_at.is_(None))
                .values(cancelled_at=now)
            )
            return int(
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.broadcast_id == broadcast_id)
                    .where(deliveries.c.state.in_([s.value for s in CANCELLABLE]))
                    .values(
                        state=DeliveryState.CANCELLED.value, updated_at=now, next_attempt_at=None
                    )
                ).rowcount
            )

    def requeue(
        self,
        broadcast_id: str,
        states: Sequence[DeliveryState],
        now: datetime,
        *,
        error_code: str | None = None,
        tenant: str | None = None,
    ) -> list[DeliveryMessage]:
        """Send matching deliveries in a RETRYABLE state (others in ``states`` match
        nothing) back to ``queued`` with a fresh retry budget; returns their messages for
        publishing. Re-queueing ``cancelled`` deliveries lifts the broadcast's cancellation in
        the same transaction (claims refuse a cancelled broadcast's deliveries); the caller
        removes the gate's mark (Entrance.uncancel) before publishing them."""
        allowed = [s.value for s in states if s in RETRYABLE]
        query = (
            update(deliveries)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .where(deliveries.c.state.in_(allowed))
        )
        if error_code is not None:
            query = query.where(deliveries.c.last_error_code == error_code)
        if tenant is not None:
            query = query.where(deliveries.c.tenant_id == tenant)
        with self._engine.begin() as conn:
            self._require(conn, broadcast_id)
            rows = conn.execute(
                query.values(
                    state=DeliveryState.QUEUED.value,
                    attempt_base=deliveries.c.attempts,
                    next_attempt_at=None,
                    updated_at=now,
                ).returning(*MESSAGE_COLUMNS)
            ).all()
            if rows and DeliveryState.CANCELLED.value in allowed:
                conn.execute(
                    update(broadcasts)
                    .where(broadcasts.c.id == broadcast_id)
                    .values(cancelled_at=None)
                )
        return [message_of(r) for r in rows]

    @staticmethod
    def _require(conn: Connection, broadcast_id: str) -> None:
        found = conn.execute(select(broadcasts.c.id).where(broadcasts.c.id == broadcast_id))
        if found.first() is None:
            raise NotFoundError(f"no broadcast with id {broadcast_id!r}")

    def source(self, broadcast_id: str) -> str:
        """Who sent the broadcast (an API key's name, ``cli``, ...): the ownership check every
        API call makes, without reading the stored message and its images."""
        query = select(broadcasts.c.source).where(broadcasts.c.id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = conn.execute(query).scalar()
        if found is None:
            raise NotFoundError(f"no broadcast with id {broadcast_id!r}")
        return str(found)

    def info(self, broadcast_id: str) -> BroadcastInfo:
        query = select(
            broadcasts.c.id,
            broadcasts.c.content_type,
            broadcasts.c.source,
            broadcasts.c.send_at,
            broadcasts.c.created_at,
            broadcasts.c.target_count,
            broadcasts.c.parts,
            broadcasts.c.personal,
        ).where(broadcasts.c.id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no broadcast with id {broadcast_id!r}")
        return BroadcastInfo(
            row.id,
            ContentType(row.content_type),
            row.source,
            row.send_at,
            row.created_at,
            row.target_count,
            MessageParts.from_json(row.parts),
            bool(row.personal),
        )

    def counts(self, broadcast_id: str) -> dict[str, int]:
        """Deliveries per state; every state is present, zero where none."""
        query = (
            select(deliveries.c.state, func.count())
            .where(deliveries.c.broadcast_id == broadcast_id)
            .group_by(deliveries.c.state)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = {state: int(n) for state, n in conn.execute(query).all()}
        return {state.value: found.get(state.value, 0) for state in DeliveryState}

    def waiting(self, broadcast_id: str) -> list[WaitLine]:
        """Its ``queued``/``retrying`` deliveries that wait for a reason, per state and reason
        (a daily quota holds them until midnight UTC; a retry waits for its time)."""
        query = (
            select(
                deliveries.c.state,
                deliveries.c.last_error_code,
                func.min(deliveries.c.last_error_message),
                func.count(),
                func.max(deliveries.c.next_attempt_at),
            )
            .where(deliveries.c.broadcast_id == broadcast_id)
            .where(deliveries.c.state.in_([s.value for s in CLAIMABLE]))
            .where(deliveries.c.last_error_code.is_not(None))
            .group_by(deliveries.c.state, deliveries.c.last_error_code)
            .order_by(deliveries.c.state, deliveries.c.last_error_code)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [WaitLine(*row) for row in conn.execute(query).all()]

    def recent_errors(self, broadcast_id: str, limit: int = 5) -> list[ErrorLine]:
        """The latest failed attempts of the broadcast, newest first."""
        query = (
            select(
                attempts.c.delivery_id,
                deliveries.c.tenant_id,
                deliveries.c.channel_id,
                attempts.c.http_status,
                attempts.c.error_code,
                attempts.c.error_message,
                attempts.c.request_id,
                attempts.c.started_at,
            )
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(deliveries.c.broadcast_id == broadcast_id)
            .where(attempts.c.outcome.is_not(None))
            .where(attempts.c.outcome != DeliveryState.SENT.value)
            # Not an error: the answer proved the old endpoint gone, the post went on to v1.0.
            .where(attempts.c.outcome != REROUTED)
            .order_by(attempts.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [ErrorLine(*row) for row in conn.execute(query).all()]

    def listing(
        self,
        *,
        states: Sequence[DeliveryState] = (),
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 20,
    ) -> list[ListedBroadcast]:
        """Broadcasts newest first (``created_at``, then id, both descending), at most
        ``limit``: those created in [since, until), from ``source``, having a delivery in one
        of ``states``, after the cursor ``after`` (the (created_at, id) of the last one of the
        page before). Reads only ``broadcasts``; a state filter probes each candidate's
        (broadcast_id, state) index for one row, never counts its deliveries."""
        query = select(*_LISTED)
        if source is not None:
            query = query.where(broadcasts.c.source == source)
        if since is not None:
            query = query.where(broadcasts.c.created_at >= since)
        if until is not None:
            query = query.where(broadcasts.c.created_at < until)
        if after is not None:
            at, bid = after
            query = query.where(
                or_(
                    broadcasts.c.created_at < at,
                    and_(broadcasts.c.created_at == at, broadcasts.c.id < bid),
                )
            )
        if states:
            having = (
                select(deliveries.c.id)
                .where(deliveries.c.broadcast_id == broadcasts.c.id)
                .where(deliveries.c.state.in_([s.value for s in states]))
            )
            query = query.where(exists(having))
        query = query.order_by(broadcasts.c.created_at.desc(), broadcasts.c.id.desc())
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [ListedBroadcast(*row) for row in conn.execute(query.limit(limit)).all()]

    def created(self, broadcast_id: str) -> datetime | None:
        """When the broadcast was recorded (None: no such broadcast): a listing's cursor."""
        query = select(broadcasts.c.created_at).where(broadcasts.c.id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found: datetime | None = conn.execute(query).scalar()
        return found

    def counts_of(self, broadcast_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """:meth:`counts` of several broadcasts in one grouped query (the (broadcast_id,
        state) index answers it): every state present for each id, zero where none."""
        found: dict[str, dict[str, int]] = {
            bid: {state.value: 0 for state in DeliveryState} for bid in broadcast_ids
        }
        if not found:
            return found
        query = (
            select(deliveries.c.broadcast_id, deliveries.c.state, func.count())
            .where(deliveries.c.broadcast_id.in_(list(found)))
            .group_by(deliveries.c.broadcast_id, deliveries.c.state)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            for bid, state, n in conn.execute(query).all():
                found[bid][state] = int(n)
        return found


@dataclass(frozen=True)
class ListedBroadcast:
    """A broadcast as a listing shows it (no content, no counts: read apart, per page)."""

    id: str
    source: str
    content_type: str
    created_at: datetime
    send_at: datetime | None
    target_count: int
    cancelled_at: datetime | None


_LISTED = (
    broadcasts.c.id,
    broadcasts.c.source,
    broadcasts.c.content_type,
    broadcasts.c.created_at,
    broadcasts.c.send_at,
    broadcasts.c.target_count,
    broadcasts.c.cancelled_at,
)
