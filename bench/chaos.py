"""Chaos benchmark (issue: delivery guarantees): the full-size run of tests/integration/test_chaos.

5,000 deliveries over 5 tenants (20 teams each); the simulator answers 10% of posts 503
(Retry-After 1 s), records 2% and then holds their answer past the HTTP timeout, and cuts 2%
of connections; one pool process of a ``threadcast worker`` is SIGKILLed every 2 s while
deliveries wait (Celery forks a new one), and once the whole worker is, replaced by a new
one. A second worker is never killed; the real ``threadcast scheduler`` runs the lease and
orphan sweeps. At the end every figure of the issue is checked (tests/integration/chaostools:
``guarantees``) and printed with the counts behind it.

    .venv/bin/python bench/chaos.py                       # 5,000 deliveries, SQLite ledger
    .venv/bin/python bench/chaos.py --database-url postgresql://postgres@127.0.0.1/chaos
    .venv/bin/python bench/chaos.py --deliveries 1000 --every 1

Prints one JSON object and a table; exits 1 if any guarantee failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import Rig, rig, wait_until
from producer import Producer
from producer.processes import WorkerProcess, start_worker
from tests.integration.chaostools import (
    MOVING,
    WAITING,
    Killer,
    SchedulerProcess,
    configure,
    count_in,
    fault_delta,
    figures,
    guarantees,
    spread,
)

FAULTS = {
    "fault_503": 0.10,
    "fault_retry_after": 1,
    "fault_accept_delay": 0.02,
    "fault_accept_delay_seconds": 8,
    "fault_drop": 0.02,
    "fault_seed": 7,
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--teams", type=int, default=20, help="teams per tenant")
    parser.add_argument("--victim", type=int, default=3, help="pool processes of the killed worker")
    parser.add_argument("--steady", type=int, default=2, help="pool processes of the other")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--backlog", type=int, default=64, help="THREADCAST_DISPATCH_BACKLOG")
    parser.add_argument("--database-url", help="the ledger (default: SQLite in a temp dir)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="the simulator delays every answer this much (Graph: hundreds)",
    )
    return parser.parse_args()


def posts(bench: Rig, content: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while page := bench.admin(f"/posts?offset={len(found)}&limit=10000")["posts"]:
        found += page
    return [p for p in found if p["content"] == content]


def run(args: argparse.Namespace) -> int:
    settings = {
        "http_timeout": 4,
        "lease_margin": 3,
        "orphan_grace": 2,
        "orphan_released_grace": 10,
        "dispatch_backlog": args.backlog,
    }
    with rig(database_url=args.database_url, **settings) as bench:
        tenants = bench.sign_in(args.tenants)
        env = os.environ | bench.settings.as_env()
        bench.start_workers(args.steady)

        def victim(n: int) -> WorkerProcess:
            return start_worker(bench.workdir / f"victim-{n}.log", env=env, concurrency=args.victim)

        configure(bench.sim, **FAULTS, latency_ms=args.latency_ms)
        before = bench.admin("/stats")["faults"]
        content = f"<p>chaos bench {uuid.uuid4()}</p>"
        ledger = bench.ledger()
        started = time.monotonic()
        with (
            SchedulerProcess(env, bench.workdir / "scheduler.log"),
            Killer(
                victim, every=args.every, seed=11, in_flight=args.victim * bench.settings.batch_size
            ) as killer,
            Producer(bench.settings) as producer,
        ):
            targets = spread(tenants, args.deliveries, args.teams)
            bid = producer.send(content, targets).broadcast_id
            killer.run(busy=lambda: count_in(ledger, bid, WAITING) > 0, whole_at=3, most=1000)
            killing = time.monotonic() - started
            settled = wait_until(lambda: count_in(ledger, bid, MOVING) == 0, timeout=600, every=0.5)
        elapsed = time.monotonic() - started
        got = figures(
            ledger, bid, posts(bench, content), fault_delta(before, bench.admin("/stats")["faults"])
        )
        ledger.close()
    checks = guarantees(got, killer.most_lost)
    report = {
        "deliveries": args.deliveries,
        "settled": settled,
        "seconds": round(elapsed, 1),
        "seconds_killing": round(killing, 1),
        "children_killed": killer.children_killed,
        "workers_killed": killer.workers_killed,
        "most_lost": killer.most_lost,
        "figures": got.as_json(),
        "guarantees": checks,
    }
    print(json.dumps(report, indent=2))
    print_table(report, checks)
    return 0 if settled and all(checks.values()) else 1


def print_table(report: dict[str, Any], checks: dict[str, bool]) -> None:
    got = report["figures"]
    print(
        f"\n{report['deliveries']} deliveries in {report['seconds']} s "
        f"(killing for {report['seconds_killing']} s: {report['children_killed']} pool "
        f"processes, {report['workers_killed']} whole worker)"
    )
    print(f"ledger: {got['states']}   unknown by cause: {got['unknown_by_cause']}")
    print(
        f"simulator: {got['posts']} posts, {got['unique_posts']} unique, "
        f"{got['duplicates']} duplicates; faults {got['faults']}"
    )
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    sys.exit(run(arguments()))
