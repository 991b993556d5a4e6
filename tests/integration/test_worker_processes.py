"""``threadcast worker`` runs one Celery worker process per CPU and keeps them running.

One process's Python is bound at about one CPU, so the command runs several, each with its
threads, and supervises them as Celery's prefork pool would: a process that dies is started
again, and SIGTERM reaches every one (their warm shutdown), after which nothing is left
``sending``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest

from producer import Producer
from producer.devredis import free_port
from producer.processes import start_worker
from tests.integration.chaostools import children, count_in, spread
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for

pytestmark = pytest.mark.backends("sqlite")


def _send(stack: Stack, n: int) -> str:
    with Producer(stack.settings) as producer:
        content = f"<p>processes {uuid.uuid4()}</p>"
        return producer.send(content, spread(stack.tenants, n, n // 2)).broadcast_id


def test_two_processes_share_the_work_and_a_killed_one_is_started_again(stack: Stack) -> None:
    stack.worker.stop()  # only the supervised worker consumes here
    worker = start_worker(stack.workdir / "two.log", env=stack.env, concurrency=2, processes=2)
    try:
        first = children(worker.process.pid)
        assert len(first) == 2
        bid = _send(stack, 40)
        wait_for(lambda: count_in(stack.ledger, bid, ["sent"]) == 40, what="40 sent")

        os.kill(first[0], signal.SIGKILL)
        wait_for(
            lambda: len(now := children(worker.process.pid)) == 2 and first[0] not in now,
            what="the killed process to be replaced",
        )
        wait_for(lambda: worker.log_text().count(" ready.") == 3, what="it to consume again")
        again = _send(stack, 20)
        wait_for(lambda: count_in(stack.ledger, again, ["sent"]) == 20, what="20 more sent")

        started = time.monotonic()
        assert worker.stop() == 0  # SIGTERM: every process stops warm
        assert time.monotonic() - started < float(stack.env["THREADCAST_HTTP_TIMEOUT"]) + 10
        assert children(worker.process.pid) == []
        assert count_in(stack.ledger, again, ["sending"]) == 0
        assert worker.log_text().count("Warm shutdown") == 2
    finally:
        worker.stop()


def test_every_process_answers_healthz_with_its_dispatcher_and_the_heartbeat(
    stack: Stack,
) -> None:
    port = free_port()
    while free_port() == port + 1:  # the second process serves on the next port
        pass
    env = stack.env | {"THREADCAST_METRICS_PORT": str(port)}
    worker = start_worker(stack.workdir / "health.log", env=env, concurrency=2, processes=2)
    try:
        bid = _send(stack, 10)
        wait_for(lambda: count_in(stack.ledger, bid, ["sent"]) == 10, what="10 sent")
        answers = [health(port), health(port + 1)]
        for status, body in answers:
            assert status == 200 and body["status"] == "ok", body
            assert body["dispatcher"]["alive"] is True
            assert body["dispatcher"]["last_turn_seconds_ago"] < 10
            assert body["heartbeat"]["stale"] is False and body["heartbeat"]["error"] is None
        flights = [body["in_flight"] for _, body in answers if "in_flight" in body]
        assert flights  # a process that delivered shows its in-flight bound (Little's law)
        for flight in flights:
            assert flight["now"] == 0 and 16 <= flight["limit"] <= flight["cap"]
        holders = {body["heartbeat"]["holder"] for _, body in answers}
        assert len(holders) == 1  # one dispatcher leads; both processes read its heartbeat
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "threadcast_dispatcher_up 1.0" in scrape
        assert "threadcast_dispatcher_heartbeat_age_seconds" in scrape
    finally:
        worker.stop()


def health(port: int) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return answer.status_code, answer.json()
