"""Signed webhook events: events, their deliveries per endpoint and attempts, endpoints' state.

``webhook_events`` holds each event once (unique per type and subject), ``webhook_deliveries``
its delivery to each endpoint, ``webhook_attempts`` every POST made, ``webhook_endpoints`` an
endpoint's failure streak and pause. ``webhook_broadcasts`` are the broadcasts watched until
they settle, ``webhook_waits`` the tenants waiting for a sign-in now. Missed schedule
occurrences get an index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    md = MetaData()
    Table("broadcasts", md, Column("id", String(128), primary_key=True))
    occurrences = Table(
        "schedule_occurrences",
        md,
        Column("schedule_id", String(64), primary_key=True),
        Column("occurrence_at", UTCDateTime, primary_key=True),
        Column("state", String(16), nullable=False),
        Column("recorded_at", UTCDateTime, nullable=False),
    )
    Table(
        "webhook_events",
        md,
        Column("id", String(40), primary_key=True),
        Column("type", String(40), nullable=False),
        Column("subject", String(300), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Index("ux_webhook_events_subject", "type", "subject", unique=True),
        Index("ix_webhook_events_created", "created_at", "id"),
    )
    Table(
        "webhook_deliveries",
        md,
        Column("event_id", String(40), ForeignKey("webhook_events.id"), primary_key=True),
        Column("endpoint", String(64), primary_key=True),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", UTCDateTime),
        Column("last_attempt_at", UTCDateTime),
        Column("last_status", Integer),
        Column("last_error", Text),
        Column("delivered_at", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("ix_webhook_deliveries_due", "endpoint", "state", "next_attempt_at"),
    )
    Table(
        "webhook_attempts",
        md,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(40), nullable=False),
        Column("endpoint", String(64), nullable=False),
        Column("number", Integer, nullable=False),
        Column("at", UTCDateTime, nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("http_status", Integer),
        Column("error", Text),
        Column("latency_ms", Float),
        Index("ix_webhook_attempts_delivery", "event_id", "endpoint"),
    )
    Table(
        "webhook_endpoints",
        md,
        Column("name", String(64), primary_key=True),
        Column("consecutive_failures", Integer, nullable=False),
        Column("failing_since", UTCDateTime),
        Column("paused_at", UTCDateTime),
        Column("pause_reason", Text),
        Column("last_attempt_at", UTCDateTime),
        Column("last_status", Integer),
        Column("last_error", Text),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "webhook_broadcasts",
        md,
        Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), primary_key=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("open", Boolean, nullable=False),
        Column("settled_at", UTCDateTime),
        Index("ix_webhook_broadcasts_open", "open", "broadcast_id"),
        Index("ix_webhook_broadcasts_created", "created_at"),
    )
    Table(
        "webhook_waits",
        md,
        Column("tenant_id", String(36), primary_key=True),
        Column("since", UTCDateTime, nullable=False),
        Column("event_id", String(40), nullable=False),
    )
    md.create_all(conn, tables=[md.tables[n] for n in _NEW])
    Index("ix_schedule_occurrences_state", occurrences.c.state, occurrences.c.recorded_at).create(
        conn
    )


_NEW = (
    "webhook_events",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_endpoints",
    "webhook_broadcasts",
    "webhook_waits",
)
