"""``threadcast status``: where a broadcast's deliveries stand, once or live.

:func:`report` builds the one :class:`~producer.reports.BroadcastReport` from the ledger; the
rest renders it: :func:`render` (text), :func:`as_json` (``--json``), :func:`bar` and
:func:`watch_line` (``--watch``: with the rate, the time left and what waits).
The HTTP API answers the same report.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from producer import change_reports
from producer.reports import BroadcastReport, EndpointReport, Estimate, MessageReport
from threadcast import endpoints
from threadcast.dispatch.limits import Limits, drain
from threadcast.ledger import BroadcastInfo, DeliveryQueries, DeliveryState, Ledger

# States in which a delivery is still moving on its own; the rest wait for a person or are done.
MOVING = frozenset(
    {DeliveryState.SCHEDULED, DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.RETRYING}
)
# At an end: what the progress bar fills.
SETTLED = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.CANCELLED)
#: Seconds between two readings of what the limits allow a watched broadcast.
_CEILING_EVERY = 30.0


def report(ledger: Ledger, broadcast_id: str, endpoint: str = endpoints.AUTO) -> BroadcastReport:
    """The broadcast, a count per state, what waits and why, its latest errors, the Graph
    endpoint (``endpoint``: the THREADCAST_ENDPOINT setting) its posts go to, and its edits
    and recall with their deliveries per item state and error groups."""
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
        changes=change_reports.change_reports(ledger, info.id),
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
    if data.changes:
        lines.append("changes:")
        for change in data.changes:
            lines += change_reports.render(change, "  ")
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


class Pace:
    """The settled count at the last refreshes, for the send rate: deliveries settled per
    second between the oldest and the newest of the last ``window`` samples."""

    def __init__(self, window: int = 10) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=max(2, window))

    def add(self, at: float, settled: int) -> None:
        self._samples.append((at, settled))

    def rate(self) -> float | None:
        """Settled per second (None: fewer than two samples, or no time between them)."""
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return max(0, s1 - s0) / (t1 - t0) if t1 > t0 else None


def limit_rate(limits: Limits, remaining: dict[tuple[str, str], int]) -> float | None:
    """The most deliveries per second the configured limits let ``remaining`` (per (tenant,
    team)) go: their count over the time the slowest scope needs for them (:func:`drain`,
    one delivery per channel). None: nothing remains; 0: a scope's limit is 0 (a tenant
    held)."""
    total = sum(remaining.values())
    if total == 0:
        return None
    seconds = drain(limits, remaining).seconds
    return 0.0 if math.isinf(seconds) else total / seconds


def estimate(
    data: BroadcastReport, rate: float | None, ceiling: float | None, now: datetime
) -> Estimate:
    """Time left: the deliveries still moving on their own (scheduled, queued, sending,
    retrying) divided by the smaller of two rates: ``rate``, the measured one (settled per
    second over the last refreshes: what the workers, Graph and every other broadcast sharing
    the limits really let through), and ``ceiling``, what the configured limits allow at best
    for this broadcast's tenants and teams (:func:`limit_rate`: the measured rate may run
    ahead of it in a burst, never for long). Before a second refresh only the ceiling is
    known, so the first estimate is the limits' best case. Deliveries held until a time (a
    channel's daily quota until midnight UTC, a retry's time) end no earlier than that
    time, so the estimate is at least until the latest of them. Unknown when nothing settled
    lately (no worker, everything held) or a limit is 0."""
    remaining = sum(data.counts[s.value] for s in MOVING)
    if remaining == 0:
        return Estimate(remaining=0, rate=rate, limit_rate=None, seconds_left=0, summary="done")
    known = [r for r in (rate, ceiling) if r is not None]
    pace = min(known) if known else None
    left = remaining / pace if pace else None
    latest = max((w.until for w in data.waiting if w.until is not None), default=None)
    if left is not None and latest is not None:
        left = max(left, (latest - now).total_seconds())
    shown = [f"{rate:.1f}/s" if rate is not None else "rate: measuring"]
    if ceiling is not None:
        shown.append(f"(limits allow {ceiling:.1f}/s)")
    if left is not None:
        shown.append(f"~{duration(left)} left")
    elif rate == 0:
        shown.append("time left unknown: nothing settled lately")
    else:
        shown.append("time left unknown")
    return Estimate(
        remaining=remaining,
        rate=rate,
        limit_rate=ceiling,
        seconds_left=left,
        summary=" ".join(shown),
    )


def duration(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m``, ``1d03h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def waits(data: BroadcastReport) -> str:
    """What waits and why, in one line: held deliveries per state and reason with the time
    they may go again, and those waiting for a sign-in. Empty: nothing waits."""
    said = []
    for w in data.waiting:
        until = f" until {w.until.astimezone(UTC):%Y-%m-%d %H:%M:%SZ}" if w.until else ""
        said.append(f"{w.count} {w.state} for {w.reason}{until}")
    signing = data.counts[DeliveryState.WAITING_AUTH.value]
    if signing:
        said.append(f"{signing} waiting_auth for a sign-in (threadcast login --tenant)")
    return "; ".join(said)


def watch_line(data: BroadcastReport, est: Estimate) -> str:
    """One refresh of ``--watch``: the bar, the rate and time left, what waits and why."""
    line = f"{bar(data)} | {est.summary}"
    held = waits(data)
    return f"{line} | waiting: {held}" if held else line


def watch(
    ledger: Ledger,
    broadcast_id: str,
    out: TextIO | None = None,
    every: float = 0.5,
    endpoint: str = endpoints.AUTO,
    *,
    limits: Limits | None = None,
    interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BroadcastReport:
    """Redraw the progress bar, the send rate, the time left (:func:`estimate`; with
    ``limits`` bounded by what they allow this broadcast, else by the measured rate alone)
    and what waits until nothing is moving any more; return the last report.

    On a terminal the line is redrawn in place; otherwise one line per refresh. A refresh
    every ``interval`` seconds (default: ``every`` on a terminal, at least 2 s otherwise).
    What the limits allow is read again every ``_CEILING_EVERY`` seconds (it counts the
    broadcast's remaining deliveries per team). Ctrl-C ends the line and raises
    KeyboardInterrupt (the CLI exits 130)."""
    out = out or sys.stdout
    live = out.isatty()
    pause = interval if interval is not None else (every if live else max(every, 2.0))
    pace = Pace()
    ceiling: float | None = None
    ceiling_at: float | None = None
    queries = DeliveryQueries(ledger.engine)
    try:
        while True:
            data = report(ledger, broadcast_id, endpoint)
            at = clock()
            pace.add(at, data.settled)
            if limits is not None and (ceiling_at is None or at - ceiling_at >= _CEILING_EVERY):
                ceiling = limit_rate(limits, queries.remaining_by_team(broadcast_id))
                ceiling_at = at
            est = estimate(data, pace.rate(), ceiling, datetime.now(UTC))
            line = watch_line(data, est)
            out.write(f"\r{line}\033[K" if live else line + "\n")
            out.flush()
            if data.done:
                out.write("\n" if live else "")
                return data
            sleep(pause)
    except KeyboardInterrupt:
        if live:
            out.write("\n")
            out.flush()
        raise
