"""Encrypted token caches written through from Redis."""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table, Text

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    md = MetaData()
    Table(
        "token_caches",
        md,
        Column("tenant_id", String(36), primary_key=True),
        Column("ciphertext", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)
