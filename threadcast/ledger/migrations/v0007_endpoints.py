"""Which Graph endpoint each attempt used, and the deployment's switch to the v1.0 successor.

``deployment`` holds facts about the whole deployment that must outlive Redis (one row per
name): today only ``endpoint``, written once when Graph proved the beta chatthreads segment
gone, so that no worker on any host tries it again.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table, Text, text

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE attempts ADD COLUMN endpoint VARCHAR(32)"))
    md = MetaData()
    Table(
        "deployment",
        md,
        Column("name", String(64), primary_key=True),
        Column("value", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)
