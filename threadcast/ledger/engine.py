"""SQLAlchemy engines for the ledger: SQLite (WAL) by default, PostgreSQL when shared."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

#: Execution option that marks a transaction as read-only (SQLite: no write lock up front).
READ_ONLY = "threadcast_read_only"


def make_engine(url: str, *, clock: Callable[[], float] = time.monotonic) -> Engine:
    """An engine for ``url`` (``sqlite:///PATH`` or ``postgresql://…``).

    ``clock`` (monotonic seconds) times how long a pooled PostgreSQL connection was idle;
    tests pass their own to move time without sleeping."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(url, pool_size=5, max_overflow=5, connect_args=_PG_CONNECT)
    _ping_when_idle(engine, clock)
    return engine


#: A host that drops off the network mid-transaction must not hold its row locks for long:
#: TCP keepalives and a user timeout on both ends find the dead connection within about
#: 20 s (the server then ends its session, rolling its transaction back and releasing its
#: locks), and a session idle inside a transaction for a minute is ended by the server
#: (no threadcast transaction waits on anything but the database).
_PG_CONNECT = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
    "options": (
        "-c idle_in_transaction_session_timeout=60000 -c tcp_keepalives_idle=10 "
        "-c tcp_keepalives_interval=3 -c tcp_keepalives_count=3 -c tcp_user_timeout=20000"
    ),
}


#: A pooled connection unused for longer than this is tested before it is handed out.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine, clock: Callable[[], float]) -> None:
    """Pessimistic disconnect handling, paid once per idle spell rather than per checkout.

    SQLAlchemy's ``pool_pre_ping`` tests every connection it hands out: a worker that
    commits once per delivery paid a second round trip per delivery for it. A connection
    back in use within a second is handed out as it is; one idle for longer (the database
    may have restarted meanwhile) answers ``SELECT 1`` first, or is replaced (the pool tries
    a fresh one when the check raises DisconnectionError). A restart in the middle of busy
    work fails that one transaction, whose caller retries it, and the pool is renewed.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = clock()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or clock() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()  # end the transaction the SELECT began
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_engine(url: str) -> Engine:
    # Pooled: opening a connection and setting its pragmas costs more than most statements.
    # Every process makes its own engine after any fork (the worker builds its context in
    # each pool child), so no pooled connection is ever shared between processes.
    engine = create_engine(
        url, poolclass=QueuePool, pool_size=4, max_overflow=8, connect_args={"timeout": 60}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock at BEGIN: a deferred transaction that later upgrades to a
        # writer can fail with SQLITE_BUSY at once, ignoring busy_timeout.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
