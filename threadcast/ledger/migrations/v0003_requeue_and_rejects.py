"""Operator re-queues, cancellation, and rejected (poison) messages."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, Text, text

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    # attempt_base: the attempt count when an operator last re-queued the delivery, so the
    # retry budget starts afresh while attempt numbers (which identify claims) keep growing.
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text(f"ALTER TABLE broadcasts ADD COLUMN cancelled_at {_timestamp(conn)}"))
    md = MetaData()
    Table(
        "rejected_messages",
        md,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("received_at", UTCDateTime, nullable=False),
        Column("worker", String(200), nullable=False),
        Column("reason", Text, nullable=False),
        Column("message", Text, nullable=False),
    )
    md.create_all(conn)


def _timestamp(conn: Connection) -> str:
    return "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
