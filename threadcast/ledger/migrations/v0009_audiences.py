"""Saved audiences: a name for a list of audience specs and explicit targets.

``audiences`` holds one row per name; ``definition`` is JSON,
``{"audiences": ["tenant=T;channel=General", ...], "targets": [{"tenant", "group",
"channel"}, ...]}``, resolved through Graph each time a broadcast uses it (never stored as
deliveries until then).
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table, Text

from threadcast.ledger.types import UTCDateTime


def apply(conn: Connection) -> None:
    md = MetaData()
    Table(
        "audiences",
        md,
        Column("name", String(64), primary_key=True),
        Column("definition", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)
