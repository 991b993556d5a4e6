"""The gate's own cost, without workers or Graph: what Redis spends on its scripts.

Against a private ``redis-server`` (limits set so high that nothing waits), each run:

- enqueue: 20,000 deliveries (20 tenants, 400 teams) through the entrance;
- release: all of them let out by the keeper, 500 permits a call;
- start: 3,000 released permits confirmed one at a time, as workers do before each POST.

Median seconds of --runs runs. To compare two commits, run it from a worktree of each, in
turn (``git worktree add /tmp/old <rev>``, then ``PYTHONPATH=/tmp/old python
/tmp/old/bench/gate.py``): the machine's noise is as large as the differences.

    .venv/bin/python bench/gate.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import redis

from producer.devredis import start_private
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Entrance, Keeper, Limits

UNLIMITED = Limits(
    window=1.0,
    app=1_000_000,
    tenant=1_000_000,
    team=1_000_000,
    channel=1_000_000,
    channel_daily=1_000_000,
    overrides={},
)


def deliveries(count: int) -> list[DeliveryMessage]:
    return [
        DeliveryMessage(
            str(uuid.uuid4()), "bench", f"t{i % 20}", f"g{i % 400}", f"19:c{i}@thread.tacv2"
        )
        for i in range(count)
    ]


def once(client: redis.Redis) -> dict[str, float]:
    client.flushdb()
    entrance, keeper = Entrance(client), Keeper(client, UNLIMITED)
    waiting = deliveries(20_000)
    started = time.perf_counter()
    entrance.enqueue(waiting)
    enqueued = time.perf_counter()
    released = 0
    while released < len(waiting):
        released += len(keeper.release(500).messages)
    let_out = time.perf_counter()
    client.flushdb()
    entrance.enqueue(deliveries(3_000))
    permits: list[DeliveryMessage] = []
    while len(permits) < 3_000:
        permits += keeper.release(1_000).messages
    confirming = time.perf_counter()
    for message in permits:
        keeper.start(message)
    confirmed = time.perf_counter()
    return {
        "enqueue_20k_s": enqueued - started,
        "release_20k_s": let_out - enqueued,
        "start_3k_s": confirmed - confirming,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = start_private()
    client = redis.Redis.from_url(server.url)
    try:
        runs = [once(client) for _ in range(args.runs)]
    finally:
        client.close()
        server.stop()
    report = {name: round(statistics.median(r[name] for r in runs), 3) for name in runs[0]}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
