"""Index deliveries by (broadcast, seq) for the HTTP API's keyset pages.

Without it, each page of a large broadcast sorts all of the broadcast's deliveries by seq;
with it, a page reads only its own rows, however deep it is.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def apply(conn: Connection) -> None:
    conn.execute(text("CREATE INDEX ix_deliveries_broadcast_seq ON deliveries (broadcast_id, seq)"))
