"""Schema migrations: one module per version (``vNNNN_name.py``), each applied once, in one
transaction, under a lock.

Each migration describes its tables as they were *at that version* (never by importing
schema.py, whose tables move on), so an old ledger and a new one end up identical; the
test suite checks that migrating from empty yields exactly :mod:`threadcast.ledger.schema`.
A module holds a docstring (the description) and ``apply(conn)``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, inspect, select, text

from threadcast.errors import LedgerError
from threadcast.ledger.types import UTCDateTime

# Any constant: serialises concurrent migrators on PostgreSQL (SQLite: BEGIN IMMEDIATE).
_PG_LOCK_ID = 0x7468726561646361
_NAME = re.compile(r"^v(\d{4})_\w+$")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _discover() -> tuple[Migration, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _NAME.match(info.name)
        if match:
            module = importlib.import_module(f"{__name__}.{info.name}")
            description = (module.__doc__ or info.name).strip().splitlines()[0].rstrip(".")
            found.append(Migration(int(match.group(1)), description, module.apply))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise LedgerError(f"migration versions must be 1..n without gaps: {versions}")
    return tuple(found)


MIGRATIONS = _discover()
HEAD = MIGRATIONS[-1].version


def _version_table(conn: Connection) -> Table:
    md = MetaData()
    table = Table(
        "schema_version",
        md,
        Column("version", Integer, primary_key=True),
        Column("description", String(200), nullable=False),
        Column("applied_at", UTCDateTime, nullable=False),
    )
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
