"""Edits and recalls of a sent broadcast: the changes, their deliveries' states, their attempts.

``broadcast_changes`` holds one row per edit or recall of a broadcast (an edit carries its
whole new message, as ``broadcasts`` does), with the lease of the one worker running it.
``change_deliveries`` holds each of the broadcast's deliveries' state in that change (done,
failed, no message id to change, ...); ``change_attempts`` every PATCH or softDelete made.
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
    false,
)

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    md = MetaData()
    Table("broadcasts", md, Column("id", String(128), primary_key=True))
    Table("deliveries", md, Column("id", String(36), primary_key=True))
    changes = Table(
        "broadcast_changes",
        md,
        Column("id", String(36), primary_key=True),
        Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), nullable=False),
        Column("number", Integer, nullable=False),
        Column("kind", String(8), nullable=False),
        Column("content", Text),
        Column("content_type", String(8)),
        Column("parts", Text),
        Column("personal", Boolean, nullable=False, server_default=false()),
        Column("source", String(200), nullable=False),
        Column("state", String(16), nullable=False),
        Column("runner", String(200)),
        Column("lease_until", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
    )
    Index("ux_broadcast_changes_number", changes.c.broadcast_id, changes.c.number, unique=True)
    Index("ix_broadcast_changes_state", changes.c.state)
    Table(
        "change_deliveries",
        md,
        Column("change_id", String(36), ForeignKey("broadcast_changes.id"), primary_key=True),
        Column("delivery_id", String(36), ForeignKey("deliveries.id"), primary_key=True),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", UTCDateTime),
        Column("last_status", Integer),
        Column("last_error_code", String(200)),
        Column("last_error_message", Text),
        Column("last_request_id", String(64)),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("ix_change_deliveries_state", "change_id", "state"),
    )
    Table(
        "change_attempts",
        md,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("change_id", String(36), nullable=False),
        Column("delivery_id", String(36), nullable=False),
        Column("number", Integer, nullable=False),
        Column("worker", String(200), nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("client_request_id", String(36), nullable=False),
        Column("outcome", String(16)),
        Column("http_status", Integer),
        Column("request_id", String(64)),
        Column("error_code", String(200)),
        Column("error_message", Text),
        Column("retry_after", Float),
        Column("latency_ms", Float),
        Index("ix_change_attempts_delivery", "change_id", "delivery_id"),
    )
    md.create_all(conn, tables=[md.tables[n] for n in _NEW])


_NEW = ("broadcast_changes", "change_deliveries", "change_attempts")
