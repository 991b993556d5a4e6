"""Rotating refresh tokens shared by many worker processes, under load, across lifetimes.

The issue's figures: 8 worker processes (2 workers of 4), 3 tenants, access tokens living
20 s, sending for at least 70 s: per tenant at most (lifetimes crossed + 1) refresh-token
grants, no ``invalid_grant`` at all, every delivery sent exactly once.

The simulator of this module is its own (``--token-lifetime 20``, refresh tokens rotate on
every use with no grace), and so are its Redis database and ledger. About 90 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import bindparam, text

import simulator.process
from producer.processes import start_worker
from simulator.process import RunningSimulator
from tests.conftest import BACKENDS, _database_url
from tests.integration.conftest import settings_from, stack_env
from tests.integration.stack import SimAdmin
from tests.integration.tokentools import Sent, new_tenant, rows, send, states, wait_settled
from threadcast.ledger import Ledger
from threadcast.settings import Settings

LIFETIME = 20  # seconds an access token lives at this module's simulator
RUN_SECONDS = 76  # one small broadcast per second for this long (posts span >= 70 s)
PER_TENANT = 5  # channels per tenant per broadcast, each in its own team
TENANTS = 3
WORKERS, PROCESSES = 2, 4


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(
        tmp_path_factory.mktemp("sim20"), device_approve_delay=0.05, token_lifetime=LIFETIME
    )
    yield running
    running.stop()


@pytest.fixture
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One backend is enough here: PostgreSQL when reachable (what 8 processes on several
    machines would use), else SQLite."""
    yield from _database_url(BACKENDS[-1], tmp_path_factory)


def test_eight_processes_share_rotating_tokens_for_three_lifetimes(
    short_lived: RunningSimulator,
    redis_url: str,
    clean_redis: redis.Redis,
    ledger_url: str,
    cache_key: str,
    tmp_path: Path,
) -> None:
    env = stack_env(short_lived, redis_url, ledger_url, cache_key)
    env |= {"THREADCAST_TOKEN_REFRESH_MARGIN": "2"}
    settings = settings_from(env)
    sim = SimAdmin(short_lived)
    workers = [
        start_worker(tmp_path / f"worker{i}.log", env=env, concurrency=PROCESSES)
        for i in range(WORKERS)
    ]
    signed_from = time.time()  # every token of the run is issued after this
    tenants = [new_tenant(settings) for _ in range(TENANTS)]
    ledger = Ledger.open(ledger_url)
    try:
        broadcasts = send_every_second(settings, tenants)
        for sent in broadcasts:
            wait_settled(ledger, sent, timeout=120)
        figures = measure(sim, ledger, broadcasts, tenants, signed_from)
    finally:
        for worker in workers:
            worker.stop()
        ledger.close()
        sim.close()

    print(f"\nrotation figures: {figures}")  # shown with pytest -s; the report quotes them
    assert figures["sending_seconds"] >= 70
    assert figures["states"] == {"sent": figures["deliveries"]}
    assert figures["posts"] == figures["unique_posts"] == figures["deliveries"]
    assert figures["duplicates"] == 0
    allowed = math.ceil(figures["run_seconds"] / LIFETIME) + 1
    # A lower bound too, to show that rotation really happened (one lifetime of slack for a
    # refresh that came late because the workers fell behind).
    needed = math.floor(figures["sending_seconds"] / LIFETIME) - 1
    for tenant in tenants:
        calls = figures["token_calls"][tenant]
        assert calls.get("invalid_grant", 0) == 0, (tenant, calls)
        assert needed <= calls.get("refresh_token", 0) <= allowed, (tenant, calls, allowed)


def send_every_second(settings: Settings, tenants: list[str]) -> list[Sent]:
    """A broadcast to PER_TENANT channels of each tenant at the start of every second."""
    started = time.monotonic()
    broadcasts: list[Sent] = []
    for second in range(RUN_SECONDS):
        broadcasts.append(send(settings, tenants, PER_TENANT, f"rot{second}-"))
        pause = started + second + 1 - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the load, not measuring anything
    return broadcasts


def measure(
    sim: SimAdmin,
    ledger: Ledger,
    broadcasts: list[Sent],
    tenants: list[str],
    signed_from: float,
) -> dict[str, Any]:
    contents = {sent.content for sent in broadcasts}
    posts = [p for p in sim.posts() if p["content"] in contents]
    arrivals = sorted(datetime.fromisoformat(p["received_at"]).timestamp() for p in posts)
    found = [row for sent in broadcasts for row in rows(ledger, sent.broadcast_id)]
    stats = sim.stats()
    return {
        "deliveries": sum(sent.targets for sent in broadcasts),
        "states": states(found),
        "posts": len(posts),
        "unique_posts": len({(p["tenant"], p["group"], p["channel"]) for p in posts}),
        "duplicates": stats["duplicates"],
        "sending_seconds": round(arrivals[-1] - arrivals[0], 1),
        "run_seconds": round(arrivals[-1] - signed_from, 1),
        "attempt_statuses": attempt_statuses(ledger, [s.broadcast_id for s in broadcasts]),
        "token_calls": {t: stats["token_calls"].get(t, {}) for t in tenants},
    }


def attempt_statuses(ledger: Ledger, broadcast_ids: list[str]) -> dict[str, int]:
    """How many attempts of these broadcasts ended with each HTTP status."""
    query = text(
        "SELECT a.http_status, COUNT(*) FROM attempts a JOIN deliveries d "
        "ON d.id = a.delivery_id WHERE d.broadcast_id IN :ids GROUP BY a.http_status"
    ).bindparams(bindparam("ids", expanding=True))
    with ledger.engine.connect() as conn:
        return {str(status): int(n) for status, n in conn.execute(query, {"ids": broadcast_ids})}
