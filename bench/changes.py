"""Edits and recalls at Graph's answer times, within Graph's edit limits.

For each answer time (the simulator's ``--latency-ms``, every documented limit enforced by
``--throttle-defaults``), a private Redis, the simulator, --tenants signed-in tenants and one
worker: a broadcast with a card (so it goes by v1.0 channel messages and every message has
an id) to --channels channels per tenant, then an edit of it, then its recall. Reported per
change: requests/s from its first request to its last (the simulator's message versions),
against the ceiling Graph allows (min(300/s for the app, 30/s per tenant x tenants)), the
429s Graph answered during it, and whether each message has exactly the versions expected.

    .venv/bin/python bench/changes.py --latency-ms 250 --latency-ms 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.performance import targets
from bench.rig import Rig, rig, wait_until
from producer import Producer
from threadcast.ledger.changes import ChangeState

CARD = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "x"}]}
BODY = '<p>{text}</p><attachment id="c"></attachment>'
EDIT_APP, EDIT_TENANT = 300, 30


def versions(bench: Rig) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = bench.admin(f"/messages?offset={len(found)}&limit=1000")
        if not page["messages"]:
            return found
        found += page["messages"]


def _span(messages: list[dict[str, Any]], kind: str) -> float:
    from datetime import datetime

    times = sorted(
        datetime.fromisoformat(v["at"]).timestamp()
        for m in messages
        for v in m["versions"]
        if v["kind"] == kind
    )
    return times[-1] - times[0] if len(times) > 1 else 0.0


def at_latency(latency_ms: int, tenants: int, channels: int) -> dict[str, Any]:
    sim_args = ["--latency-ms", str(latency_ms), "--throttle-defaults"]
    with rig(sim_args=sim_args, changes=True, endpoint="channel-messages") as bench:
        bench.sign_in(tenants)
        bench.start_workers(processes=1)
        total = tenants * channels
        with Producer(bench.settings) as producer:
            cards = [{"id": "c", "content": CARD}]
            sent = producer.send(
                BODY.format(text="first"),
                targets(bench.tenants, total, teams_per_tenant=channels),
                cards=cards,
            ).broadcast_id
            wait_until(lambda: producer.ledger.broadcasts.counts(sent)["sent"] == total, 900)
            throttled = bench.admin("/throttle")["totals"]["throttled"]
            figures: dict[str, Any] = {"latency_ms": latency_ms, "messages": total}
            for kind in ("edit", "recall"):
                if kind == "edit":
                    made = producer.edit(sent, BODY.format(text="edited"), cards=cards)
                else:
                    made = producer.recall(sent)
                started = time.monotonic()
                wait_until(
                    lambda c=made.change.id: (
                        producer.ledger.changes.get(c).state is ChangeState.DONE
                    ),
                    900,
                    every=0.1,
                )
                took = time.monotonic() - started
                messages = versions(bench)
                version = "edited" if kind == "edit" else "soft_deleted"
                span = _span(messages, version)
                now = bench.admin("/throttle")["totals"]["throttled"]
                ceiling = min(EDIT_APP, EDIT_TENANT * tenants)
                rate = (total - 1) / span if span else float("inf")
                figures[kind] = {
                    "done": producer.ledger.changes.get(made.change.id).counts["done"],
                    "seconds": round(took, 2),
                    "per_second": round(rate, 1),
                    "of_ceiling": round(rate / ceiling, 3),
                    "graph_429s": now - throttled,
                }
                throttled = now
            summary = bench.admin("/messages?limit=1")["summary"]
            figures["histories"] = summary["histories"]
            figures["soft_delete_repeats"] = summary["soft_delete_repeats"]
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=int, action="append")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--channels", type=int, default=60, help="per tenant")
    args = parser.parse_args()
    report = [at_latency(ms, args.tenants, args.channels) for ms in args.latency_ms or [250, 1000]]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
