"""Real services for the suite: a private Redis, PostgreSQL databases of our own, SQLite files.

Nothing here touches data the tests did not create: Redis is a private ``redis-server`` on a
free port (or ``THREADCAST_TEST_REDIS_URL``, whose database the tests then own), and each
PostgreSQL ledger is a database created for one test and dropped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from producer import devredis

PG_ADMIN_URL = os.environ.get(
    "THREADCAST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _backends() -> list[str]:
    # CI sets THREADCAST_TEST_REQUIRE_POSTGRES=1: there a missing PostgreSQL is a failure,
    # not a quietly smaller suite.
    if _postgres_reachable():
        return ["sqlite", "postgresql"]
    if os.environ.get("THREADCAST_TEST_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(f"PostgreSQL is required but not reachable at {PG_ADMIN_URL}")
    return ["sqlite"]


BACKENDS = _backends()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("THREADCAST_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = devredis.start_private(db=0)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The tests' Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
        return
    name = f"threadcast_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty ledger database on each backend (SQLite, and PostgreSQL when reachable)."""
    yield from _database_url(request.param, tmp_path_factory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.backends("sqlite")`` runs a stack (or ``database_url``) test on those
    ledgers only: the other parametrisations are deselected (not run, not reported as
    skipped)."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        backend = params.get("stack", params.get("database_url"))
        if marker is not None and backend is not None and backend not in marker.args:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # The longest modules first: with `-n 2 --dist loadfile` a long module handed out last
    # would leave one test process idle while the other finishes it (about a minute).
    items[:] = sorted(keep, key=lambda item: item.path.name not in LONG_MODULES)


#: Modules that take a minute or more each (pytest --durations), run before the rest.
#: test_limits.py is not one: it asserts that no post draws a 429, and run beside the
#: eight-process token rotation its posts' lag from permit to arrival grew past its guard.
LONG_MODULES = frozenset(
    {
        "test_tokens_rotation.py",
        "test_hosts_drop_off.py",
        "test_chaos.py",
        "test_tokens_auth.py",
    }
)
