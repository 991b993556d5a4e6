"""The id of the message Graph created (v1.0 channel-messages endpoint), per attempt and delivery.

The beta chatthreads endpoint answers 204 with no body, so these stay empty there.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def apply(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE attempts ADD COLUMN message_id VARCHAR(200)"))
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN message_id VARCHAR(200)"))
