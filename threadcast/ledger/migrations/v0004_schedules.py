"""Scheduled and recurring announcements: schedules, their occurrences, one-off releases.

``schedules`` holds recurring announcements (cron expression, time zone, content, targets as
validated JSON) with ``checked_through``, the instant up to which the scheduler has dealt
with their occurrences. ``schedule_occurrences`` records each occurrence once (its primary
key is the schedule and the instant): released, late, skipped, missed or failed.
``broadcast_releases`` records when the scheduler moved a one-off broadcast's deliveries
from ``scheduled`` to ``queued`` and whether they have been published since.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    md = MetaData()
    # Only the referenced column: enough for the foreign keys below to resolve.
    Table("broadcasts", md, Column("id", String(128), primary_key=True))
    Table(
        "schedules",
        md,
        Column("id", String(64), primary_key=True),
        Column("cron", String(200), nullable=False),
        Column("timezone", String(64), nullable=False),
        Column("content", Text, nullable=False),
        Column("content_type", String(8), nullable=False),
        Column("targets", Text, nullable=False),
        Column("target_count", Integer, nullable=False),
        Column("source", String(200), nullable=False),
        Column("state", String(16), nullable=False),
        Column("grace_seconds", Integer, nullable=False),
        Column("checked_through", UTCDateTime, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("ix_schedules_state", "state"),
    )
    Table(
        "schedule_occurrences",
        md,
        Column("schedule_id", String(64), ForeignKey("schedules.id"), primary_key=True),
        Column("occurrence_at", UTCDateTime, primary_key=True),
        Column("state", String(16), nullable=False),
        Column("broadcast_id", String(128)),
        Column("recorded_at", UTCDateTime, nullable=False),
        Column("released_at", UTCDateTime),
        Column("note", Text),
    )
    Table(
        "broadcast_releases",
        md,
        Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), primary_key=True),
        Column("due_at", UTCDateTime, nullable=False),
        Column("state", String(16), nullable=False),
        Column("released_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime),
        Index("ix_broadcast_releases_published", "published_at"),
    )
    md.create_all(conn, tables=[md.tables[n] for n in _NEW])
    # Due one-off broadcasts are found by their send time.
    conn.execute(text("CREATE INDEX ix_broadcasts_send_at ON broadcasts (send_at)"))


_NEW = ("schedules", "schedule_occurrences", "broadcast_releases")
