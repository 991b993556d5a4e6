"""Metrics: the recording functions, the scrape, the workers' server, multiprocess mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from producer.devredis import free_port
from threadcast import metrics
from threadcast.ledger import DeliveryQueries
from threadcast.ledger.engine import make_engine
from threadcast.settings import Settings


def sample(name: str, **labels: str) -> float:
    value = metrics.scrape_registry().get_sample_value(name, labels)
    return 0.0 if value is None else value


def snapshot(tenant: str) -> dict[str, float]:
    attempts = "threadcast_attempts_total"
    refreshes = "threadcast_token_refreshes_total"
    return {
        "sent": sample(attempts, tenant=tenant, status="204", outcome="sent"),
        "none": sample(attempts, tenant=tenant, status="none", outcome="unknown"),
        "429": sample("threadcast_throttled_total", scope="tenant"),
        "ok": sample(refreshes, tenant=tenant, result="ok"),
        "bad": sample(refreshes, tenant=tenant, result="failed"),
        "wait": sample("threadcast_limiter_wait_seconds_count"),
        "lat": sample("threadcast_enqueue_to_sent_seconds_bucket", le="2.0"),
    }


def test_recording_functions_show_in_a_scrape() -> None:
    tenant = "0b7c6a52-0000-4000-8000-000000000001"
    before = snapshot(tenant)
    metrics.record_attempt(204, tenant, "sent")
    metrics.record_attempt(204, tenant, "sent")
    metrics.record_attempt(None, tenant, "unknown")
    metrics.record_throttled("tenant")
    metrics.record_token_refresh(tenant, ok=True)
    metrics.record_token_refresh(tenant, ok=False)
    metrics.observe_limiter_wait(0.02)
    metrics.observe_enqueue_to_sent(1.5)
    metrics.set_parked(7)
    after = snapshot(tenant)
    assert {k: after[k] - before[k] for k in before} == {
        "sent": 2,
        "none": 1,
        "429": 1,
        "ok": 1,
        "bad": 1,
        "wait": 1,
        "lat": 1,
    }
    assert sample("threadcast_parked_deliveries") == 7


def test_the_workers_metrics_server_serves_the_text_format() -> None:
    assert metrics.serve(Settings(metrics_port=None)) is None
    server = metrics.serve(Settings(metrics_port=free_port()), host="127.0.0.1")
    assert server is not None
    try:
        metrics.record_throttled("channel")
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    finally:
        server.stop()
    assert response.status_code == 200
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"threadcast_throttled", "threadcast_attempts", "threadcast_parked_deliveries"} <= names


def test_store_gauges_say_when_the_ledger_or_redis_is_down(tmp_path: Path) -> None:
    queries = DeliveryQueries(make_engine(f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}"))
    client = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    registry = metrics.scrape_registry(metrics.StoreCollector(queries, client))
    body, content_type = metrics.render(registry, None)
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert "threadcast_ledger_up 0.0" in text and "threadcast_redis_up 0.0" in text
    client.close()


_CHILDREN = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from threadcast import metrics

    def child(n):
        for _ in range(n):
            metrics.record_attempt(204, "tenant-a", "sent")
        metrics.record_attempt(429, "tenant-b", "retrying")

    if __name__ == "__main__":
        metrics.prepare_multiprocess_dir()
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=child, args=(n,)) for n in (1, 2, 3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            metrics.process_exited(p.pid)
        registry = metrics.scrape_registry()
        get = registry.get_sample_value
        print(json.dumps({
            "sent": get("threadcast_attempts_total",
                        {"tenant": "tenant-a", "status": "204", "outcome": "sent"}),
            "throttled": get("threadcast_attempts_total",
                             {"tenant": "tenant-b", "status": "429", "outcome": "retrying"}),
        }))
    """
)


def test_multiprocess_mode_adds_up_every_child(tmp_path: Path) -> None:
    script = tmp_path / "children.py"
    script.write_text(_CHILDREN)
    stale = tmp_path / "metrics"
    stale.mkdir()
    (stale / "counter_999999.db").write_bytes(b"stale run")  # dropped by prepare
    env = os.environ | {metrics.MULTIPROC_ENV: str(stale)}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sent": 6.0, "throttled": 3.0}
