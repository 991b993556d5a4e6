"""Broadcasts, deliveries and attempts."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def apply(conn: Connection) -> None:
    md = MetaData()
    Table(
        "broadcasts",
        md,
        Column("id", String(128), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("content", Text, nullable=False),
        Column("content_type", String(8), nullable=False),
        Column("source", String(200), nullable=False),
        Column("send_at", UTCDateTime),
        Column("target_count", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
    )
    Table(
        "deliveries",
        md,
        Column("id", String(36), primary_key=True),
        Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("tenant_id", String(36), nullable=False),
        Column("group_id", String(36), nullable=False),
        Column("channel_id", String(256), nullable=False),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("lease_owner", String(200)),
        Column("lease_until", UTCDateTime),
        Column("next_attempt_at", UTCDateTime),
        Column("last_status", Integer),
        Column("last_error_code", String(200)),
        Column("last_error_message", Text),
        Column("last_request_id", String(64)),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime),
        Index("ix_deliveries_broadcast_state", "broadcast_id", "state"),
        Index("ix_deliveries_state_tenant", "state", "tenant_id"),
    )
    Table(
        "attempts",
        md,
        Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        Column("delivery_id", String(36), ForeignKey("deliveries.id"), nullable=False),
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
        Index("ix_attempts_delivery", "delivery_id"),
    )
    md.create_all(conn)
