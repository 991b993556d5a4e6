"""Many posts in flight, and what must still hold when something fails around them.

- A tenant whose token cannot be had (here: its refresh lock held by someone else for
  longer than a refresh can take) parks only its own deliveries, with the reason noted; the
  other tenants' deliveries in the same worker go on.
- Answers that arrive while the ledger is unavailable keep their outcome (written again with
  backoff while the claims' leases last) instead of turning ``unknown``; with
  ``THREADCAST_AMBIGUOUS=retry`` none is posted again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from producer import Producer
from tests.conftest import PG_ADMIN_URL
from tests.integration.chaostools import count_in
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.constants import TOKEN_LOCK_KEY

STACK_ENV = {"THREADCAST_HTTP_TIMEOUT": "3", "THREADCAST_AMBIGUOUS": "retry"}


@pytest.fixture
def slow_answers(stack: Stack) -> Iterator[None]:
    stack.sim.configure(latency_ms=1500)
    yield
    stack.sim.configure(latency_ms=0)


def _targets(tenant: str, n: int) -> list[dict[str, str]]:
    team = str(uuid.uuid4())
    return [
        {"tenant": tenant, "group": team, "channel": f"19:f{uuid.uuid4().hex[:8]}@thread.tacv2"}
        for _ in range(n)
    ]


def _send(stack: Stack, targets: list[dict[str, str]]) -> tuple[str, str]:
    content = f"<p>flight {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        return producer.send(content, targets).broadcast_id, content


def _of_tenant(stack: Stack, broadcast: str, tenant: str, state: str) -> int:
    with stack.ledger.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM deliveries WHERE broadcast_id = :b AND tenant_id = :t "
                    "AND state = :s"
                ),
                {"b": broadcast, "t": tenant, "s": state},
            ).scalar()
            or 0
        )


@pytest.mark.backends("sqlite")
def test_a_tenant_without_a_token_waits_and_the_others_go_on(stack: Stack) -> None:
    stuck, other = stack.tenants
    # Graph refuses the tenant's access token: its next token needs a refresh, whose lock
    # someone else holds, for longer than THREADCAST_HTTP_TIMEOUT + 5 s.
    stack.sim.revoke(stuck, access_tokens_only=True)
    lock = stack.redis.lock(TOKEN_LOCK_KEY + stuck, timeout=60)
    assert lock.acquire(blocking=False)
    try:
        broadcast, _ = _send(stack, _targets(stuck, 6) + _targets(other, 6))
        wait_for(
            lambda: _of_tenant(stack, broadcast, other, "sent") == 6,
            timeout=15,
            what="the other tenant's deliveries",
        )
        assert _of_tenant(stack, broadcast, stuck, "sent") == 0
        wait_for(
            lambda: _noted(stack, broadcast, stuck),
            timeout=30,
            what="the stuck tenant's deliveries to be noted as waiting for a token",
        )
    finally:
        lock.release()
    wait_for(
        lambda: _of_tenant(stack, broadcast, stuck, "sent") == 6,
        timeout=60,
        what="the tenant's deliveries once its lock is free",
    )
    assert "no token" in stack.worker.log_text()


def _noted(stack: Stack, broadcast: str, tenant: str) -> bool:
    with stack.ledger.engine.connect() as conn:
        codes = (
            conn.execute(
                text(
                    "SELECT last_error_code FROM deliveries WHERE broadcast_id = :b "
                    "AND tenant_id = :t AND state IN ('queued', 'retrying')"
                ),
                {"b": broadcast, "t": tenant},
            )
            .scalars()
            .all()
        )
    return bool(codes) and "token_unavailable" in codes


@pytest.mark.backends("postgresql")
def test_answers_outlive_a_ledger_outage_and_none_is_posted_again(
    stack: Stack, slow_answers: None
) -> None:
    tenant = stack.tenants[0]
    warm, _ = _send(stack, _targets(tenant, 1))  # the endpoint tested, the batch goes whole
    wait_for(lambda: count_in(stack.ledger, warm, ["sent"]) == 1, what="a first post")
    broadcast, content = _send(stack, _targets(tenant, 4))
    wait_for(
        lambda: count_in(stack.ledger, broadcast, ["sending"]) == 4,
        timeout=15,
        what="the posts in flight",
    )
    # The answers come 1.5 s after the posts: cut every ledger connection until well after.
    database = stack.settings.database_url.rsplit("/", 1)[1]
    stop = threading.Event()
    cutter = threading.Thread(target=_cut_connections, args=(database, stop))
    cutter.start()
    time.sleep(3.0)
    stop.set()
    cutter.join()
    stack.ledger.engine.dispose()  # our own pooled connections were cut too
    wait_for(
        lambda: count_in(stack.ledger, broadcast, ["sent"]) == 4,
        timeout=30,
        what="every answer recorded",
    )
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == 4 and len({p["channel"] for p in posts}) == 4
    assert "the ledger refused" in stack.worker.log_text()
    with stack.ledger.engine.connect() as conn:
        attempts = conn.execute(
            text(
                "SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b"
            ),
            {"b": broadcast},
        ).scalar()
    assert attempts == 4  # one attempt each: none became unknown or was retried


def _cut_connections(database: str, stop: threading.Event) -> None:
    """The ledger's database refuses every connection, and those open are cut, until
    ``stop``: what a restart of PostgreSQL looks like to the worker."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            while not stop.is_set():
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
                time.sleep(0.05)
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
