"""``threadcast status``: where a broadcast's deliveries stand, once or live.

:func:`report` builds the one :class:`~producer.reports.BroadcastReport` from the ledger; the
rest renders it: :func:`render` (text), :func:`as_json` (``--json``), :func:`bar` (``--watch``).
The HTTP API answers the same report.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from producer.reports import BroadcastReport, EndpointReport, MessageReport
from threadcast import endpoints
from threadcast.ledger import BroadcastInfo, DeliveryQueries, DeliveryState, Ledger

# States in which a delivery is still moving on its own; the rest wait for a person or are done.
MOVING = frozenset(
    {DeliveryState.SCHEDULED, DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.RETRYING}
)
# At an end: what the progress bar fills.
SETTLED = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.CANCELLED)


def report(ledger: Ledger, broadcast_id: str, endpoint: str = endpoints.AUTO) -> BroadcastReport:
    """The broadcast, a count per state, what waits and why, its latest errors, and the Graph
    endpoint (``endpoint``: the THREADCAST_ENDPOINT setting) its posts go to."""
    info = ledger.broadcasts.info(broadcast_id)
    counts = ledger.broadcasts.counts(broadcast_id)
    return BroadcastReport(
        broadcast_id=info.id,
        source=info.source,
        content_type=info.content_type,
        created_at=info.created_at,
        send_at=info.send_at,
        total=info.target_count,
        counts=counts,
        settled=sum(counts[s.value] for s in SETTLED),
        done=not any(counts[s.value] for s in MOVING),
        waiting=ledger.broadcasts.waiting(broadcast_id),
        message=message_report(info),
        endpoint=endpoint_report(ledger, broadcast_id, endpoint),
        errors=ledger.broadcasts.recent_errors(broadcast_id),
    )


def message_report(info: BroadcastInfo) -> MessageReport:
    """What the message carries beside its body: with any part it goes by v1.0 channel
    messages whatever the deployment's endpoint (the seed's chatthreads request carries a
    body only)."""
    parts = info.parts.describe()
    goes_by = endpoints.CHANNEL_MESSAGES if info.parts.beyond_body else None
    said = [parts]
    if info.personal:
        said.append("personal text filled in per delivery")
    if goes_by is None:
        said.append("by the deployment's endpoint")
    else:
        said.append("by v1.0 channel messages (the message has parts beyond its body)")
    return MessageReport(
        parts=parts, personal=info.personal, goes_by=goes_by, summary=", ".join(said)
    )


def endpoint_report(ledger: Ledger, broadcast_id: str, setting: str) -> EndpointReport:
    switch = endpoints.recorded(ledger.deployment)
    return EndpointReport(
        setting=setting,
        active=endpoints.active(setting, switch),
        summary=endpoints.describe(setting, switch),
        switch=switch,
        attempts=DeliveryQueries(ledger.engine).attempts_by_endpoint(broadcast_id),
    )


def as_json(data: BroadcastReport) -> dict[str, Any]:
    """``status --json``: the report exactly as ``GET /v1/broadcasts/{id}`` answers it, plus
    the keys it had before it was shared: ``broadcast`` (the id) and every state's count at
    the top level (as in ``counts``; no state is named like a field, tests/unit checks)."""
    shown = data.model_dump(mode="json")
    return {"broadcast": data.broadcast_id, **shown, **shown["counts"]}


def dumps(data: BroadcastReport) -> str:
    return json.dumps(as_json(data), indent=2)


def render(data: BroadcastReport) -> str:
    counts = data.counts
    lines = [f"broadcast {data.broadcast_id} ({data.total} deliveries, from {data.source})"]
    lines += [f"  {s.value:<13}{counts[s.value]:>8}" for s in DeliveryState if counts[s.value]]
    lines.append(f"message: {data.message.summary}")
    lines.append(f"endpoint: {data.endpoint.summary}")
    for name, outcomes in sorted(data.endpoint.attempts.items()):
        shown = ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
        lines.append(f"  attempts on {name}: {shown}")
    if data.waiting:
        lines.append("waiting:")
        for w in data.waiting:
            until = f" until {w.until.isoformat()}" if w.until else ""
            lines.append(f"  {w.count:>6} {w.state}, {w.reason}{until}: {w.message}")
    if data.errors:
        lines.append("latest errors:")
        for e in data.errors:
            lines.append(
                f"  {e.at.isoformat()}  {e.channel} (tenant {e.tenant}): HTTP {e.http_status} "
                f"{e.error_code}: {e.error_message} [request-id {e.request_id}]"
            )
    return "\n".join(lines)


def bar(data: BroadcastReport, width: int = 30) -> str:
    counts = data.counts
    filled = int(width * data.settled / max(1, data.total))
    others = ", ".join(
        f"{s.value} {counts[s.value]}"
        for s in DeliveryState
        if s is not DeliveryState.SENT and counts[s.value]
    )
    sent = counts[DeliveryState.SENT.value]
    return f"[{'#' * filled}{'.' * (width - filled)}] {sent}/{data.total} sent  {others}"


def watch(
    ledger: Ledger,
    broadcast_id: str,
    out: TextIO | None = None,
    every: float = 0.5,
    endpoint: str = endpoints.AUTO,
) -> BroadcastReport:
    """Redraw a progress bar until nothing is moving any more; return the last report."""
    out = out or sys.stdout
    live = out.isatty()
    while True:
        data = report(ledger, broadcast_id, endpoint)
        line = bar(data)
        out.write(f"\r{line}\033[K" if live else line + "\n")
        out.flush()
        if data.done:
            out.write("\n" if live else "")
            return data
        time.sleep(every if live else max(every, 2.0))
