"""The real stack for integration tests: simulator over HTTPS, Redis, ledger, Celery worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

import simulator.process
from producer.processes import WorkerProcess, start_worker
from producer.signin import sign_in
from simulator.process import RunningSimulator
from tests.conftest import BACKENDS, _database_url
from tests.integration.stack import CLIENT_ID, SimAdmin
from threadcast.ledger import Ledger
from threadcast.settings import Settings

STACK_REDIS_DB = 1


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(tmp_path_factory.mktemp("sim"), device_approve_delay=0.1)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def sim_admin(sim: RunningSimulator) -> Iterator[SimAdmin]:
    admin = SimAdmin(sim)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def cache_key() -> str:
    return Fernet.generate_key().decode()


def stack_env(sim: RunningSimulator, redis_url: str, database_url: str, key: str) -> dict[str, str]:
    """The THREADCAST_* environment a worker or CLI of this stack runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADCAST_")}
    return env | {
        "THREADCAST_REDIS_URL": redis_url,
        "THREADCAST_DATABASE_URL": database_url,
        "THREADCAST_GRAPH_URL": sim.graph_url,
        "THREADCAST_AUTHORITY_HOST": sim.authority_host,
        "THREADCAST_CA_BUNDLE": str(sim.ca_bundle),
        "THREADCAST_CLIENT_ID": CLIENT_ID,
        "THREADCAST_TOKEN_CACHE_KEY": key,
        "THREADCAST_HTTP_TIMEOUT": "10",
    }


def settings_from(env: dict[str, str]) -> Settings:
    prefix = "THREADCAST_"
    return Settings(**{k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)})


@dataclass
class Stack:
    env: dict[str, str]
    settings: Settings
    ledger: Ledger
    redis: redis.Redis
    sim: SimAdmin
    worker: WorkerProcess
    tenants: list[str]
    workdir: Path


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    cache_key: str,
) -> Iterator[Stack]:
    """A worker on a fresh ledger (each backend) with two signed-in tenants; a module's
    ``STACK_ENV`` dict adds or overrides THREADCAST_* settings."""
    url = redis_url.rsplit("/", 1)[0] + f"/{STACK_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    workdir = tmp_path_factory.mktemp("stack")
    for database_url in _database_url(request.param, tmp_path_factory):
        # A test module may set STACK_ENV to run its stack with other settings.
        extra = getattr(request.module, "STACK_ENV", {})
        env = stack_env(sim, url, database_url, cache_key) | extra
        settings = settings_from(env)
        tenants = [str(uuid.uuid4()) for _ in range(2)]
        for tenant in tenants:
            sign_in(settings, tenant, lambda _text: None)
        worker = start_worker(workdir / "worker.log", env=env)
        ledger = Ledger.open(database_url)
        try:
            yield Stack(env, settings, ledger, client, sim_admin, worker, tenants, workdir)
        finally:
            worker.stop()
            ledger.close()
            client.flushdb()
            client.close()
