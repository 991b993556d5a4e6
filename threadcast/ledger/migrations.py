"""Schema migrations: an ordered list, each applied once, in one transaction, under a lock.

Each migration describes its tables as they were *at that version* (never by importing
schema.py, whose tables move on), so an old ledger and a new one end up identical; the
test suite checks that migrating from empty yields exactly :mod:`schema`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
    inspect,
    select,
    text,
)

from threadcast.errors import LedgerError
from threadcast.ledger.types import UTCDateTime

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")
# Any constant: serialises concurrent migrators on PostgreSQL (SQLite: BEGIN IMMEDIATE).
_PG_LOCK_ID = 0x7468726561646361


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_core(conn: Connection) -> None:
    md = MetaData()
    Table(
        "broadcasts", md,
        Column("id", String(128), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("content", Text, nullable=False),
        Column("content_type", String(8), nullable=False),
        Column("source", String(200), nullable=False),
        Column("send_at", UTCDateTime),
        Column("target_count", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
    )  # fmt: skip
    Table(
        "deliveries", md,
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
    )  # fmt: skip
    Table(
        "attempts", md,
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
    )  # fmt: skip
    md.create_all(conn)


def _v2_token_caches(conn: Connection) -> None:
    md = MetaData()
    Table(
        "token_caches", md,
        Column("tenant_id", String(36), primary_key=True),
        Column("ciphertext", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )  # fmt: skip
    md.create_all(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "broadcasts, deliveries and attempts", _v1_core),
    Migration(2, "encrypted token caches written through from Redis", _v2_token_caches),
)
HEAD = MIGRATIONS[-1].version


def _version_table(conn: Connection) -> Table:
    md = MetaData()
    table = Table(
        "schema_version", md,
        Column("version", Integer, primary_key=True),
        Column("description", String(200), nullable=False),
        Column("applied_at", UTCDateTime, nullable=False),
    )  # fmt: skip
    md.create_all(conn)
    return table


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    found = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(found or 0)


def upgrade(conn: Connection, target: int = HEAD) -> list[int]:
    """Apply every migration above the ledger's version up to ``target``; return those applied.

    ``conn`` must be inside a transaction; the caller commits. A ledger newer than this code
    is refused rather than guessed at.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(text(f"pg_advisory_xact_lock({_PG_LOCK_ID})")))
    table = _version_table(conn)
    have = current_version(conn)
    if have > HEAD:
        raise LedgerError(
            f"the ledger's schema is version {have} but this threadcast knows up to {HEAD}: "
            "upgrade threadcast"
        )
    applied = []
    for migration in MIGRATIONS:
        if have < migration.version <= target:
            migration.apply(conn)
            conn.execute(
                table.insert().values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            applied.append(migration.version)
    return applied
