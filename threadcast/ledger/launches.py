"""Launching one-off scheduled broadcasts when due: ``scheduled`` deliveries become ``queued``.

A launch is one transaction: the broadcast's ``scheduled`` deliveries move to ``queued`` and
a ``broadcast_releases`` row is written with ``published_at`` empty. Publishing happens after
the commit; only then is ``published_at`` set. A scheduler that dies in between leaves the
row unpublished, and the next leader publishes it (a duplicate message is harmless: a worker
claims a delivery once). A broadcast due longer ago than the grace is not sent late: its
deliveries are cancelled and the launch is recorded as ``missed``.

The table (``broadcast_releases``), its ``released_at`` column and the state ``released`` keep
the names they were stored under; in the code a broadcast falling due is *launched*
("release" is the gate's word, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, exists, insert, select, update

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import broadcast_releases, broadcasts, deliveries
from threadcast.ledger.states import DeliveryState

#: ``deliveries.last_error_code`` of a delivery cancelled because its send time was missed.
MISSED_CODE = "missed_send_time"


class LaunchState(enum.StrEnum):
    ON_TIME = "released"  # launched on time (the stored name)
    LATE = "late"  # after its time, within the grace
    MISSED = "missed"  # due longer ago than the grace: cancelled, not sent


@dataclass(frozen=True)
class DueBroadcast:
    id: str
    send_at: datetime


@dataclass(frozen=True)
class LaunchRecord:
    broadcast_id: str
    due_at: datetime
    state: LaunchState
    launched_at: datetime
    published_at: datetime | None


_WAITING = (
    exists()
    .where(deliveries.c.broadcast_id == broadcasts.c.id)
    .where(deliveries.c.state == DeliveryState.SCHEDULED.value)
)


class LaunchBook:
    """The scheduler's side of one-off broadcasts with a send time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def due(self, now: datetime, since: datetime | None = None) -> list[DueBroadcast]:
        """Broadcasts due at or before ``now`` (and after ``since``) that still hold
        ``scheduled`` deliveries and were not cancelled, earliest first."""
        query = (
            select(broadcasts.c.id, broadcasts.c.send_at)
            .where(broadcasts.c.send_at <= now)
            .where(broadcasts.c.cancelled_at.is_(None))
            .where(_WAITING)
            .order_by(broadcasts.c.send_at, broadcasts.c.id)
        )
        if since is not None:
            query = query.where(broadcasts.c.send_at > since)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [DueBroadcast(row.id, row.send_at) for row in conn.execute(query).all()]

    def launch(self, broadcast_id: str, due_at: datetime, state: LaunchState, now: datetime) -> int:
        """Move the broadcast's ``scheduled`` deliveries to ``queued`` and record the launch,
        in one transaction; returns how many moved (0: cancelled or launched before, and
        nothing is written)."""
        with self._engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(deliveries.c.broadcast_id == broadcast_id)
                .where(deliveries.c.state == DeliveryState.SCHEDULED.value)
                .values(state=DeliveryState.QUEUED.value, updated_at=now)
            ).rowcount
            if moved:
                conn.execute(
                    insert(broadcast_releases).values(
                        broadcast_id=broadcast_id,
                        due_at=due_at,
                        state=state.value,
                        released_at=now,
                        published_at=None,
                    )
                )
            return int(moved)

    def expire(self, broadcast_id: str, due_at: datetime, now: datetime, note: str) -> int:
        """Cancel the broadcast's ``scheduled`` deliveries (send time missed by more than the
        grace) and record the launch as ``missed``; returns how many were cancelled."""
        with self._engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(deliveries.c.broadcast_id == broadcast_id)
                .where(deliveries.c.state == DeliveryState.SCHEDULED.value)
                .values(
                    state=DeliveryState.CANCELLED.value,
                    updated_at=now,
                    last_error_code=MISSED_CODE,
                    last_error_message=note,
                )
            ).rowcount
            if moved:
                conn.execute(
                    insert(broadcast_releases).values(
                        broadcast_id=broadcast_id,
                        due_at=due_at,
                        state=LaunchState.MISSED.value,
                        released_at=now,
                        published_at=now,
                    )
                )
            return int(moved)

    def unpublished(self) -> list[str]:
        """Launched broadcasts whose deliveries were not confirmed published."""
        query = (
            select(broadcast_releases.c.broadcast_id)
            .where(broadcast_releases.c.published_at.is_(None))
            .order_by(broadcast_releases.c.released_at)
        )
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return list(conn.execute(query).scalars())

    def mark_published(self, broadcast_id: str, now: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(broadcast_releases)
                .where(broadcast_releases.c.broadcast_id == broadcast_id)
                .values(published_at=now)
            )

    def get(self, broadcast_id: str) -> LaunchRecord | None:
        query = select(broadcast_releases).where(broadcast_releases.c.broadcast_id == broadcast_id)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return LaunchRecord(
            row.broadcast_id,
            row.due_at,
            LaunchState(row.state),
            row.released_at,
            row.published_at,
        )
