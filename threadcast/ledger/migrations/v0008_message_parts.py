"""Message parts and personal text: once per broadcast and schedule, variables per delivery.

``broadcasts.parts`` holds everything of the message beside its body (subject, importance,
cards, images, mentions) as ``MessageParts.to_json()`` (NULL: a body-only message, as every
broadcast written before); ``broadcasts.personal`` says its content (and subject) is a
template filled in per delivery with ``deliveries.variables`` (JSON of the target's variables;
NULL for a broadcast that is not personal). Schedules carry both, for the broadcasts they make.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def apply(conn: Connection) -> None:
    false = "false" if conn.dialect.name == "postgresql" else "0"
    for table in ("broadcasts", "schedules"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN parts TEXT"))
        conn.execute(
            text(f"ALTER TABLE {table} ADD COLUMN personal BOOLEAN NOT NULL DEFAULT {false}")
        )
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN variables TEXT"))
