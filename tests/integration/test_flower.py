"""Flower, Celery's own monitor, shows threadcast's workers and tasks when
THREADCAST_TASK_EVENTS is on (as the compose file sets it)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producer.client import Producer
from producer.devredis import free_port
from producer.processes import start_worker
from producer.signin import sign_in
from simulator.process import RunningSimulator
from tests.integration.conftest import settings_from, stack_env
from tests.integration.stack import wait_for
from threadcast.ledger import DeliveryQueries

pytest.importorskip("flower")

FLOWER_REDIS_DB = 2  # its own database: no other test's worker takes our task


@pytest.fixture
def events_env(
    sim: RunningSimulator, redis_url: str, cache_key: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    url = redis_url.rsplit("/", 1)[0] + f"/{FLOWER_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = stack_env(sim, url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    yield env | {"THREADCAST_TASK_EVENTS": "true", "FLOWER_UNAUTHENTICATED_API": "true"}
    client.flushdb()
    client.close()


def get(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def test_flower_shows_threadcast_workers_and_tasks(
    events_env: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_from(events_env)
    tenant = str(uuid.uuid4())
    sign_in(settings, tenant, lambda _text: None)
    # Heartbeats and remote control on, as `threadcast worker` runs in compose.
    worker = start_worker(tmp_path / "worker.log", env=events_env)
    port = free_port()
    with (tmp_path / "flower.log").open("wb") as log:
        flower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env=events_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/api/workers?refresh=1") is not None, what="Flower")
        with Producer(settings) as producer:
            target = {"tenant": tenant, "group": str(uuid.uuid4()), "channel": "19:fl@thread.tacv2"}
            result = producer.send("seen by Flower", [target], content_type="text")
            [row] = DeliveryQueries(producer.ledger.engine).page(result.broadcast_id).rows

        def our_task() -> dict[str, Any] | None:
            tasks = (get(f"{base}/api/tasks") or {}).values()
            return next((t for t in tasks if row.id in str(t.get("args"))), None)

        wait_for(lambda: (our_task() or {}).get("state") == "SUCCESS", what="the task in Flower")
        assert (our_task() or {})["name"] == "threadcast.send_delivery"
        workers = get(f"{base}/api/workers?refresh=1") or {}
        assert any(name.startswith(worker.name.split("@")[0] + "@") for name in workers)
    finally:
        flower.terminate()
        flower.wait(30)
        worker.stop()
