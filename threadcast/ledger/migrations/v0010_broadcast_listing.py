"""An index for listing broadcasts newest first (threadcast list): (created_at, id).

Without it each page of ``threadcast list`` sorts the whole broadcasts table.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def apply(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX ix_broadcasts_created ON broadcasts (created_at, id)"))
