"""Accepting a personalised broadcast (issue 15): 10,000 targets, each with its own variables,
through ``Producer.send`` as a caller runs it.

Each run starts a fresh rig (a private Redis, the simulator, 20 signed-in tenants, a SQLite
ledger, or PostgreSQL with --backend postgresql) and times ``Producer.send`` from the call to
its return: every target validated, its variables checked against the templates (content and
subject rendered in Jinja2's sandbox), the broadcast and its deliveries (with their variables)
written in one transaction, then every delivery put in the gate. Checked after each run: the
ledger holds every delivery with its variables, the gate knows every one. For scale, the same
targets without variables (a plain broadcast) are timed in the same rig right after. Median
of --runs with min and max; the target: ≤ 2 s for 10,000.

    .venv/bin/python bench/personal.py                       # 10,000 targets, 3 runs, SQLite
    .venv/bin/python bench/personal.py --targets 50000 --runs 1 --backend postgresql
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.performance import _database, targets
from bench.rig import rig, summary
from producer import Producer
from threadcast.dispatch import keys
from threadcast.ledger.schema import deliveries

CONTENT = (
    "<h1>Maintenance tonight, {{ team_name }}</h1>"
    "<p>Your region, {{ region }}, goes offline at {{ window }} UTC.</p>"
)
SUBJECT = "{{ team_name }}: maintenance"


def personal(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    regions = ("north", "south", "east", "west")
    return [
        row | {"team_name": f"Team <{n}>", "region": regions[n % 4], "window": f"{n % 24:02}:00"}
        for n, row in enumerate(rows)
    ]


def one_run(total: int, backend: str) -> dict[str, float]:
    database, drop = _database(backend)
    try:
        with rig(database_url=database) as bench:
            bench.sign_in(20)
            plain = targets(bench.tenants, total)
            mine = personal(plain)
            with Producer(bench.settings) as producer:
                started = time.perf_counter()
                result = producer.send(
                    CONTENT, mine, subject=SUBJECT, importance="high", broadcast_id="personal"
                )
                seconds = time.perf_counter() - started
                check(bench.redis.url, producer, result.broadcast_id, total, personal=True)
                started = time.perf_counter()
                result = producer.send(CONTENT, plain, broadcast_id="plain")
                baseline = time.perf_counter() - started
                check(bench.redis.url, producer, result.broadcast_id, total, personal=False)
            return {"seconds": seconds, "plain_seconds": baseline}
    finally:
        drop()


def check(
    redis_url: str, producer: Producer, broadcast_id: str, total: int, personal: bool
) -> None:
    info = producer.ledger.broadcasts.info(broadcast_id)
    with producer.ledger.engine.connect() as conn:
        count, with_variables = conn.execute(
            select(func.count(), func.count(deliveries.c.variables)).where(
                deliveries.c.broadcast_id == broadcast_id
            )
        ).one()
    expected = (total, total if personal else 0)
    if info.personal is not personal or (count, with_variables) != expected:
        raise RuntimeError(
            f"{broadcast_id}: personal {info.personal}, {count} deliveries, "
            f"{with_variables} with variables; expected {expected}"
        )
    client = redis.Redis.from_url(redis_url)
    try:
        known = client.hlen(keys.KNOWN)
    finally:
        client.close()
    if known < total:
        raise RuntimeError(f"the gate knows {known} deliveries, expected at least {total}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = [one_run(args.targets, args.backend) for _ in range(args.runs)]
    report: dict[str, Any] = {
        "backend": args.backend,
        "targets": args.targets,
        "personal_seconds": summary([r["seconds"] for r in runs]),
        "plain_seconds": summary([r["plain_seconds"] for r in runs]),
        "target_seconds": 2.0,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    return 0 if report["personal_seconds"]["median"] <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
