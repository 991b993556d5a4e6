"""Rate-limit benchmark (issue: limits that hold across every worker).

Scenarios, each against the simulator enforcing Graph's limits with sliding 1-second windows:

- accuracy: 10 tenants x 1,000 deliveries over 50 teams, 4 worker processes, the simulator
  enforcing tenant 20/s, team 4/s, app 100/s (scaled to what this machine drives). Reports
  throughput against the binding limit (app 100/s), 429s, the highest count in any 1-second
  window per scope, requests sent during an announced Retry-After, and the lag from each
  post's permit (its time in the app's sliding log, on Redis's clock, as `start` moved it
  right before the POST) to its arrival at the simulator: the jitter the limit guard
  (THREADCAST_LIMIT_GUARD_MS) must cover is that lag's spread.
- celery: the same workload through a plain Celery task with ``rate_limit`` = the tenant
  limit and default prefetch, same 4 processes, bounded to --celery-seconds.
- fairness: while tenant A's 20,000-delivery broadcast is in flight, how long tenant B's
  10-delivery broadcast takes to be sent completely.
- parking: Redis commands per delivery when one tenant is offered 10x its limit.

    .venv/bin/python bench/limits.py --runs 3            # everything
    .venv/bin/python bench/limits.py --only fairness     # one scenario
    .venv/bin/python bench/limits.py --only accuracy --only celery --runs 1  # side by side

Prints one JSON object and a table. Timings are medians of --runs runs with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import CLIENT_ID, Rig, rig, summary, wait_until
from producer import Producer

LIMITS = {"app_rps": 100, "tenant_rps": 20, "team_rps": 4}
SIM_LIMITS = ["--app-rps", "100", "--tenant-rps", "20", "--team-rps", "4"]
BINDING = 100  # min(app 100, 10 tenants x 20, 50 teams x 4)


def workload(tenants: list[str], per_tenant: int, teams_per_tenant: int) -> list[dict[str, str]]:
    targets = []
    for tenant in tenants:
        teams = [str(uuid.uuid4()) for _ in range(teams_per_tenant)]
        for i in range(per_tenant):
            targets.append(
                {
                    "tenant": tenant,
                    "group": teams[i % teams_per_tenant],
                    "channel": f"19:{uuid.uuid4().hex}@thread.tacv2",
                }
            )
    return targets


def wait_sent(
    producer: Producer, broadcast_id: str, at_least: int, timeout: float, every: float = 0.5
) -> bool:
    def enough() -> bool:
        return producer.ledger.broadcasts.counts(broadcast_id)["sent"] >= at_least

    return wait_until(enough, timeout=timeout, every=every)


def posts_times(bench: Rig) -> list[float]:
    times: list[float] = []
    while True:
        page = bench.admin(f"/posts?offset={len(times)}&limit=10000")["posts"]
        if not page:
            return times
        times += [_epoch(p["received_at"]) for p in page]


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def throttle_report(bench: Rig) -> dict[str, Any]:
    report = bench.admin("/throttle")
    scopes = report["scopes"]
    worst = {
        kind: max(
            (
                v.get("max_window", 0) / max(1, v["limit"])
                for k, v in scopes.items()
                if k.startswith(kind) and v.get("limit")
            ),
            default=0.0,
        )
        for kind in ("app", "tenant", "team")
    }
    return {
        "throttled": report["totals"]["throttled"],
        "retry_after_violations": report["totals"]["retry_after_violations"],
        "scopes_over_limit": report["totals"]["max_window_over_limit"],
        "worst_window_to_limit": {k: round(v, 3) for k, v in worst.items()},
    }


class PermitWatch:
    """Samples the app's sliding log every 20 ms: each permit's last score is the time its
    post started, on Redis's clock (the simulator runs on this host: the same clock)."""

    def __init__(self, bench: Rig) -> None:
        import redis as redis_lib

        from threadcast.dispatch import keys

        self._client = redis_lib.Redis.from_url(bench.settings.redis_url)
        self._key = keys.APP_LOG
        self.started: dict[str, float] = {}  # delivery id -> when its post started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for permit, score in self._client.zrange(self._key, 0, -1, withscores=True):
                self.started[permit.decode().split("@", 1)[0]] = float(score)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()


def permit_lags(bench: Rig, producer: Producer, started: dict[str, float]) -> dict[str, Any]:
    """Arrival at the simulator minus the permit's start time, per accepted post, in ms."""
    from sqlalchemy import select

    from threadcast.ledger.schema import attempts

    with producer.ledger.engine.connect() as conn:
        rows = conn.execute(select(attempts.c.client_request_id, attempts.c.delivery_id)).all()
    delivery_of = {r.client_request_id: r.delivery_id for r in rows}
    lags: list[float] = []
    offset = 0
    while page := bench.admin(f"/posts?offset={offset}&limit=10000")["posts"]:
        offset += len(page)
        for post in page:
            delivery = delivery_of.get(post["client_request_id"])
            if delivery in started:
                lags.append((_epoch(post["received_at"]) - started[delivery]) * 1000)
    lags.sort()
    if not lags:
        return {"permit_to_arrival_ms": None}

    def at(q: float) -> float:
        return round(lags[min(len(lags) - 1, int(q * len(lags)))], 2)

    return {
        "permit_to_arrival_ms": {
            "matched": len(lags),
            "min": round(lags[0], 2),
            "p50": at(0.5),
            "p90": at(0.9),
            "p99": at(0.99),
            "max": round(lags[-1], 2),
            "spread": round(lags[-1] - lags[0], 2),
        }
    }


def accuracy(runs: int, per_tenant: int) -> dict[str, Any]:
    results = []
    with rig(sim_args=SIM_LIMITS, **LIMITS) as bench:
        bench.sign_in(10)
        bench.start_workers(4)
        for _ in range(runs):
            bench.http.post(f"{bench.sim.admin_url}/reset").raise_for_status()
            targets = workload(bench.tenants, per_tenant, 5)
            watch = PermitWatch(bench)
            with Producer(bench.settings) as producer:
                sent = producer.send("<p>accuracy</p>", targets, content_type="html")
                total = len(targets)
                wait_sent(producer, sent.broadcast_id, total, timeout=total / BINDING * 2 + 120)
                counts = producer.ledger.broadcasts.counts(sent.broadcast_id)
                watch.stop()
                lags = permit_lags(bench, producer, watch.started)
            times = sorted(posts_times(bench))
            rate = (len(times) - 1) / (times[-1] - times[0])
            results.append(
                {
                    "deliveries": total,
                    "sent": counts["sent"],
                    "accepted": len(times),
                    "throughput": round(rate, 2),
                    "of_binding_limit": round(rate / BINDING, 4),
                    **throttle_report(bench),
                    **lags,
                }
            )
    return {
        "runs": results,
        "throughput": summary([r["throughput"] for r in results]),
        "of_binding_limit": summary([r["of_binding_limit"] for r in results]),
    }


def _tokens(bench: Rig, path: Path) -> None:
    tokens = {}
    with httpx.Client(verify=bench.sim.ssl_context()) as http:
        for tenant in bench.tenants:
            app = msal.PublicClientApplication(
                CLIENT_ID,
                authority=bench.sim.authority(tenant),
                instance_discovery=False,
                http_client=http,
            )
            result = app.acquire_token_by_device_flow(
                app.initiate_device_flow(scopes=["Group.ReadWrite.All"])
            )
            tokens[tenant] = result["access_token"]
    path.write_text(json.dumps(tokens))
    path.chmod(0o600)


def plain_celery(per_tenant: int, seconds: float) -> dict[str, Any]:
    with rig(sim_args=SIM_LIMITS, **LIMITS) as bench:
        bench.tenants = [str(uuid.uuid4()) for _ in range(10)]
        tokens = bench.workdir / "tokens.json"
        _tokens(bench, tokens)
        env = os.environ | {
            "PLAIN_BROKER": bench.settings.redis_url,
            "PLAIN_CA": str(bench.sim.ca_bundle),
            "PLAIN_TOKENS": str(tokens),
            "PLAIN_GRAPH": bench.sim.graph_url,
            "PLAIN_RATE": "20/s",
        }
        log = (bench.workdir / "plain.log").open("wb")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.plain_celery",
                "worker",
                "-Q",
                "plain",
                "-c",
                "4",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            from bench.plain_celery import app

            app.conf.broker_url = bench.settings.redis_url
            targets = workload(bench.tenants, per_tenant, 5)
            with app.producer_or_acquire() as producer:
                for t in targets:
                    app.send_task(
                        "plain.post",
                        args=[t["tenant"], t["group"], quote(t["channel"], safe="")],
                        producer=producer,
                    )
            start = time.monotonic()
            stats = lambda: bench.admin("/stats")  # noqa: E731
            wait_until(
                lambda: stats()["accepted"] + stats()["rejected"].get("429", 0) >= len(targets),
                timeout=seconds,
                every=1.0,
            )
            elapsed = time.monotonic() - start
            final = stats()
            times = sorted(posts_times(bench))
        finally:
            worker.terminate()
            worker.wait(30)
            log.close()
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        report = throttle_report(bench)
        overshoot = report["worst_window_to_limit"]["tenant"]
        return {
            "deliveries_offered": len(targets),
            "accepted": final["accepted"],
            "throttled_429": final["rejected"].get("429", 0),
            "seconds": round(elapsed, 1),
            "throughput": round(rate, 2),
            "overshoot_factor_tenant": overshoot,
            **report,
        }


def fairness(runs: int) -> dict[str, Any]:
    waits = []
    with rig() as bench:
        big, small = bench.sign_in(2)
        bench.start_workers(4)
        with Producer(bench.settings) as producer:
            for _ in range(runs):
                a = producer.send("<p>big</p>", workload([big], 20_000, 100), content_type="html")
                wait_sent(producer, a.broadcast_id, 200, timeout=60)
                began = time.monotonic()
                b = producer.send("<p>small</p>", workload([small], 10, 10), content_type="html")
                wait_sent(producer, b.broadcast_id, 10, timeout=60, every=0.01)
                waits.append(time.monotonic() - began)
                producer.cancel(a.broadcast_id)
                time.sleep(2)
    return {"small_broadcast_seconds": summary(waits)}


def parking(runs: int) -> dict[str, Any]:
    per_delivery = []
    with rig(tenant_rps=20, team_rps=20, app_rps=500) as bench:
        (tenant,) = bench.sign_in(1)
        bench.start_workers(4)
        import redis

        client = redis.Redis.from_url(bench.settings.redis_url)
        with Producer(bench.settings) as producer:
            for _ in range(runs):
                before = int(client.info("stats")["total_commands_processed"])
                ids = []
                for _second in range(2):  # 200 per second offered, 10x the tenant's 20/s
                    ids.append(
                        producer.send(
                            "<p>park</p>", workload([tenant], 200, 10), content_type="html"
                        ).broadcast_id
                    )
                    time.sleep(1)
                for broadcast_id in ids:
                    wait_sent(producer, broadcast_id, 200, timeout=120)
                after = int(client.info("stats")["total_commands_processed"])
                per_delivery.append((after - before) / 400)
        client.close()
    return {"redis_commands_per_delivery": summary(per_delivery)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-tenant", type=int, default=1000)
    parser.add_argument("--celery-seconds", type=float, default=60)
    parser.add_argument(
        "--only",
        action="append",
        choices=["accuracy", "celery", "fairness", "parking"],
        help="run only this scenario (repeat for several)",
    )
    args = parser.parse_args()
    scenarios = {
        "accuracy": lambda: accuracy(args.runs, args.per_tenant),
        "celery": lambda: plain_celery(args.per_tenant, args.celery_seconds),
        "fairness": lambda: fairness(args.runs),
        "parking": lambda: parking(args.runs),
    }
    report = {name: run() for name, run in scenarios.items() if not args.only or name in args.only}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
