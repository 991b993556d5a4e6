"""``threadcast status``: where a broadcast's deliveries stand, once or live."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from threadcast import endpoints
from threadcast.ledger import DeliveryQueries, DeliveryState, Ledger

# States in which a delivery is still moving on its own; the rest wait for a person or are done.
MOVING = frozenset(
    {DeliveryState.SCHEDULED, DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.RETRYING}
)


def report(ledger: Ledger, broadcast_id: str, endpoint: str = endpoints.AUTO) -> dict[str, Any]:
    """One JSON-ready object: the broadcast, a count per state, its latest errors, and the
    Graph endpoint (``endpoint``: the THREADCAST_ENDPOINT setting) its posts go to."""
    info = ledger.broadcasts.info(broadcast_id)
    counts = ledger.broadcasts.counts(broadcast_id)
    errors = ledger.broadcasts.recent_errors(broadcast_id)
    waiting = ledger.broadcasts.waiting(broadcast_id)
    return {
        "broadcast": info.id,
        "source": info.source,
        "content_type": info.content_type.value,
        "created_at": info.created_at.isoformat(),
        "send_at": info.send_at.isoformat() if info.send_at else None,
        "total": info.target_count,
        **counts,
        "done": not any(counts[s.value] for s in MOVING),
        "errors": [asdict(e) | {"at": e.at.isoformat()} for e in errors],
        "waiting": [
            asdict(w) | {"until": w.until.isoformat() if w.until else None} for w in waiting
        ],
        "endpoint": endpoint_report(ledger, broadcast_id, endpoint),
    }


def endpoint_report(ledger: Ledger, broadcast_id: str, setting: str) -> dict[str, Any]:
    switch = endpoints.recorded(ledger.deployment)
    return {
        "setting": setting,
        "active": endpoints.active(setting, switch),
        "summary": endpoints.describe(setting, switch),
        "switch": asdict(switch) if switch else None,
        "attempts": DeliveryQueries(ledger.engine).attempts_by_endpoint(broadcast_id),
    }


def render(data: dict[str, Any]) -> str:
    lines = [f"broadcast {data['broadcast']} ({data['total']} deliveries, from {data['source']})"]
    lines += [f"  {s.value:<13}{data[s.value]:>8}" for s in DeliveryState if data[s.value]]
    lines.append(f"endpoint: {data['endpoint']['summary']}")
    for name, outcomes in sorted(data["endpoint"]["attempts"].items()):
        shown = ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
        lines.append(f"  attempts on {name}: {shown}")
    if data["waiting"]:
        lines.append("waiting:")
        for w in data["waiting"]:
            until = f" until {w['until']}" if w["until"] else ""
            lines.append(f"  {w['count']:>6} {w['state']}, {w['reason']}{until}: {w['message']}")
    if data["errors"]:
        lines.append("latest errors:")
        for e in data["errors"]:
            lines.append(
                f"  {e['at']}  {e['channel']} (tenant {e['tenant']}): HTTP {e['http_status']} "
                f"{e['error_code']}: {e['error_message']} [request-id {e['request_id']}]"
            )
    return "\n".join(lines)


def bar(data: dict[str, Any], width: int = 30) -> str:
    total = max(1, data["total"])
    settled = data["sent"] + data["failed"] + data["cancelled"]
    filled = int(width * settled / total)
    others = ", ".join(
        f"{s.value} {data[s.value]}"
        for s in DeliveryState
        if s is not DeliveryState.SENT and data[s.value]
    )
    return f"[{'#' * filled}{'.' * (width - filled)}] {data['sent']}/{data['total']} sent  {others}"


def watch(
    ledger: Ledger, broadcast_id: str, out: TextIO | None = None, every: float = 0.5,
    endpoint: str = endpoints.AUTO,
) -> dict[str, Any]:  # fmt: skip
    """Redraw a progress bar until nothing is moving any more; return the last report."""
    out = out or sys.stdout
    live = out.isatty()
    while True:
        data = report(ledger, broadcast_id, endpoint)
        line = bar(data)
        out.write(f"\r{line}\033[K" if live else line + "\n")
        out.flush()
        if data["done"]:
            out.write("\n" if live else "")
            return data
        time.sleep(every if live else max(every, 2.0))


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)
