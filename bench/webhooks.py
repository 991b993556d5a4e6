"""Webhooks end to end: a broadcast of 2,000 deliveries with 5% failures, its events posted to
two endpoints whose receiver is down for the first 30 s (docs/WEBHOOKS.md).

A private Redis, the simulator, a worker and the scheduler's two webhook jobs (driven here as
the scheduler drives them: events found every 2 s, due deliveries sent every 1 s in the
background, with the default retry policy: 5 s doubling). 100 of the deliveries go to teams
the app is not a member of (403: failed). The receiver verifies every request with
``standardwebhooks`` and counts what arrived. Prints JSON: per endpoint the events received
by type, duplicates (a webhook-id twice), refused signatures, the attempts made, and the
times from acceptance to settling and to each event's arrival.

    .venv/bin/python bench/webhooks.py [--deliveries 2000] [--down 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import rig, wait_until
from producer.scheduler.events import FindEvents
from producer.scheduler.webhooks import SendWebhooks
from tests.integration.receiver import Receiver
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.lifecycle import Intake, Publisher
from threadcast.webhooks import new_secret, parse_webhooks

TENANTS = 4
FAILING_TEAMS = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--failures", type=float, default=0.05)
    parser.add_argument("--down", type=float, default=30.0, help="seconds the receiver is down")
    args = parser.parse_args()
    secrets = {"/ops": new_secret(), "/audit": new_secret()}
    receiver = Receiver(secrets)
    hooks = parse_webhooks(
        json.dumps(
            [
                {"name": p.strip("/"), "url": receiver.url(p), "secret": s, "events": "*"}
                for p, s in secrets.items()
            ]
        )
    )
    with rig(tenant_rps=500, team_rps=50, app_rps=1000) as bench:
        tenants = bench.sign_in(TENANTS)
        bench.start_workers(2)
        ledger = bench.ledger()
        failing = [str(uuid.uuid4()) for _ in range(FAILING_TEAMS)]
        for team in failing:
            bench.http.post(
                f"{bench.sim.admin_url}/tenants/{tenants[0]}/teams/{team}/membership",
                json={"member": False},
            ).raise_for_status()
        finder, sender = FindEvents(ledger, hooks), SendWebhooks(ledger, hooks)
        stop = threading.Event()
        finder.run(datetime.now(UTC))  # as a scheduler started before the broadcast

        def scheduler() -> None:
            ticks = 0
            while not stop.is_set():
                now = datetime.now(UTC)
                if ticks % 2 == 0:
                    finder.run(now)
                sender.run(now)
                ticks += 1
                stop.wait(1.0)

        loop = threading.Thread(target=scheduler, daemon=True)
        bad = round(args.deliveries * args.failures)
        targets = [
            Target(
                tenants[0] if i < bad else tenants[i % TENANTS],
                failing[i % FAILING_TEAMS] if i < bad else str(uuid.uuid4()),
                f"19:{uuid.uuid4().hex}@thread.tacv2",
            )
            for i in range(args.deliveries)
        ]
        broadcast = Broadcast(
            f"bench-{uuid.uuid4()}", "<p>webhooks</p>", ContentType.HTML, tuple(targets), "bench"
        )
        began = time.monotonic()
        publisher = Publisher(bench.settings.redis_url)
        Intake(ledger, publisher).accept(broadcast, broadcast.targets, datetime.now(UTC))
        publisher.close()
        loop.start()

        def settled() -> bool:
            counts = ledger.broadcasts.counts(broadcast.id)
            return counts["sent"] + counts["failed"] + counts["unknown"] == args.deliveries

        wait_until(settled, 600, every=0.2)
        settled_after = time.monotonic() - began
        time.sleep(max(0.0, args.down - (time.monotonic() - began)))
        receiver.start()
        up_after = time.monotonic() - began
        arrived = wait_until(
            lambda: all(len(receiver.events(p)) >= 2 for p in secrets), 600, every=0.2
        )
        time.sleep(5)  # anything more (a duplicate) would come now
        stop.set()
        loop.join(10)
        sender.join(10)
        counts = ledger.broadcasts.counts(broadcast.id)
        events = ledger.webhooks.recent(10)
        receiver.stop()
        ledger.close()
    per_endpoint = {}
    for path in secrets:
        got = receiver.events(path)
        ids = [r.webhook_id for r in got]
        per_endpoint[path.strip("/")] = {
            "received": receiver.by_type(path),
            "duplicates": len(ids) - len(set(ids)),
            "arrived_after_s": sorted(round(r.at - began, 1) for r in got),
            "attempts": {
                e.type: next(d.attempts for d in e.deliveries if d.endpoint == path.strip("/"))
                for e in events
            },
        }
    figures = {
        "deliveries": args.deliveries,
        "counts": {k: v for k, v in counts.items() if v},
        "settled_after_s": round(settled_after, 1),
        "receiver_up_after_s": round(up_after, 1),
        "all_arrived": arrived,
        "refused_signatures": len(receiver.refused),
        "endpoints": per_endpoint,
    }
    print(json.dumps(figures, indent=2))
    ok = arrived and not receiver.refused
    for each in per_endpoint.values():
        received = each["received"]
        assert isinstance(received, dict)
        ok = ok and received == {"broadcast.completed": 1, "broadcast.needs_attention": 1}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
