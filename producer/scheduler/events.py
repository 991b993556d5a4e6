"""The scheduler's job that finds what webhook endpoints are told (docs/WEBHOOKS.md).

Each run, bounded and idempotent (every event is unique per type and subject in the ledger):

- **broadcasts**: new broadcasts are watched (read in creation order from a cursor that
  re-reads a few minutes back, for producers whose transactions commit late); a page of the
  watched ones is checked against the (broadcast, state) index, round robin. One whose
  deliveries are all settled (none scheduled, queued, sending, retrying or waiting_auth) gets
  one ``broadcast.completed`` with its counts and, if any failed or are unknown, one
  ``broadcast.needs_attention`` with its largest error groups; then it is no longer watched.
- **tenants**: a tenant with deliveries in ``waiting_auth`` gets one ``tenant.waiting_auth``
  per episode: while it keeps waiting nothing more is said; once none of its deliveries wait,
  a later wait is a new episode.
- **schedules**: an occurrence recorded ``missed`` gets one ``schedule.missed``.

The first run on a ledger watches broadcasts created in the last hour and those still moving;
broadcasts settled before webhooks were set up are not announced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from threadcast.ledger import Ledger
from threadcast.ledger.webhooks import UNSETTLED, Cursor, MissedCursor, NewEvent
from threadcast.webhooks import EventType, WebhookEndpoint

log = logging.getLogger("threadcast.webhooks")

#: How often the job runs (seconds): how late an event is found, at most, when all is calm.
FIND_INTERVAL_SECONDS = 2.0
#: Broadcasts created this long before the very first run are watched too.
FIRST_LOOKBACK = timedelta(hours=1)
#: Broadcasts (and missed occurrences) are read again this far back: a producer's
#: transaction may commit after a later one.
OVERLAP = timedelta(minutes=5)
#: Missed occurrences recorded this long before the process started are not announced.
MISSED_LOOKBACK = timedelta(days=1)
#: New broadcasts read, and watched ones checked, per run at most.
PAGE = 500
#: Error groups a ``broadcast.needs_attention`` lists.
TOP_ERRORS = 5
SETTLED_STATES = ("sent", "failed", "unknown", "cancelled")


class FindEvents:
    """``run(now)``: record the events that happened since the last run (see the module)."""

    def __init__(
        self, ledger: Ledger, endpoints: Sequence[WebhookEndpoint], *, page: int = PAGE
    ) -> None:
        self._ledger = ledger
        self._endpoints = tuple(endpoints)
        self._page = page
        self._after: Cursor | None = None  # the next broadcast to read, in creation order
        self._high: datetime | None = None  # the newest creation time read
        self._open_after = ""  # the round robin through watched broadcasts
        self._missed_after: MissedCursor | None = None  # the next missed occurrence to read
        self._missed_high: datetime | None = None

    def subscribers(self, kind: EventType) -> list[str]:
        return [e.name for e in self._endpoints if e.wants(kind)]

    def run(self, now: datetime) -> None:
        if not self._endpoints:
            return
        self.track(now)
        self.broadcasts(now)
        self.tenants(now)
        self.schedules(now)

    # -- broadcasts ----------------------------------------------------------------------
    def track(self, now: datetime) -> None:
        """Watch the broadcasts created since the last run."""
        book = self._ledger.webhooks
        if self._after is None or self._high is None:
            high = book.watch_high()
            if high is None:
                book.watch_unsettled()
                high = now - FIRST_LOOKBACK
            self._high = high
            self._after = (high - OVERLAP, "")
        seen = book.watch_new(self._after, self._page)
        if seen:
            self._high = max(self._high, seen[-1][0])
        if len(seen) < self._page:
            self._after = (self._high - OVERLAP, "")  # the end: next time, a little back
        else:
            self._after = seen[-1]

    def broadcasts(self, now: datetime) -> int:
        """Announce the settled broadcasts among a page of the watched ones."""
        book = self._ledger.webhooks
        ids = book.open_broadcasts(self._open_after, self._page)
        self._open_after = ids[-1] if len(ids) == self._page else ""
        if not ids:
            return 0
        counts = self._ledger.broadcasts.counts_of(ids)
        settled = [b for b in ids if not any(counts[b][s.value] for s in UNSETTLED)]
        if not settled:
            return 0
        facts = book.broadcast_facts(settled)
        made = 0
        for bid in settled:
            events = self._broadcast_events(bid, counts[bid], facts.get(bid), now)
            made += book.settle_broadcast(bid, events, self.subscribers, now)
        return made

    def _broadcast_events(
        self,
        bid: str,
        counts: dict[str, int],
        facts: tuple[str, datetime, int] | None,
        now: datetime,
    ) -> list[NewEvent]:
        shown = {state: counts.get(state, 0) for state in SETTLED_STATES}
        data: dict[str, Any] = {
            "broadcast_id": bid,
            "total": sum(counts.values()),
            "counts": shown,
            "settled_at": now.isoformat(),
        }
        if facts is not None:
            data |= {"source": facts[0], "created_at": facts[1].isoformat()}
        events = [NewEvent(EventType.BROADCAST_COMPLETED, bid, data)]
        attention = shown["failed"] + shown["unknown"]
        if attention:
            errors = [
                {"state": state, "error_code": code, "count": n}
                for state, code, n in self._ledger.webhooks.top_errors(bid, TOP_ERRORS)
            ]
            needs = {
                "broadcast_id": bid,
                "failed": shown["failed"],
                "unknown": shown["unknown"],
                "total": data["total"],
                "counts": shown,
                "top_errors": errors,
            }
            if facts is not None:
                needs["source"] = facts[0]
            events.append(NewEvent(EventType.BROADCAST_NEEDS_ATTENTION, bid, needs))
        return events

    # -- tenants -------------------------------------------------------------------------
    def tenants(self, now: datetime) -> int:
        """One ``tenant.waiting_auth`` per episode of a tenant's deliveries waiting."""
        book = self._ledger.webhooks
        waiting = book.waiting_tenants()
        open_waits = book.open_waits()
        book.end_waits(sorted(set(open_waits) - set(waiting)))
        made = 0
        for tenant in sorted(set(waiting) - set(open_waits)):
            data = {
                "tenant_id": tenant,
                "since": now.isoformat(),
                "waiting": waiting[tenant],
                "action": f"threadcast login --tenant {tenant}",
            }
            event = NewEvent(EventType.TENANT_WAITING_AUTH, f"{tenant}@{now.isoformat()}", data)
            made += book.begin_wait(tenant, event, self.subscribers, now)
        return made

    # -- schedules -----------------------------------------------------------------------
    def schedules(self, now: datetime) -> int:
        """One ``schedule.missed`` per occurrence recorded missed."""
        book = self._ledger.webhooks
        if self._missed_after is None or self._missed_high is None:
            self._missed_high = now - MISSED_LOOKBACK
            self._missed_after = (self._missed_high, "", self._missed_high)
        found = book.missed_after(self._missed_after, self._page)
        if found:
            self._missed_high = max(self._missed_high, found[-1].recorded_at)
        if len(found) < self._page:
            back = self._missed_high - OVERLAP
            self._missed_after = (back, "", back)
        else:
            self._missed_after = found[-1].cursor
        subjects = {_occurrence_subject(m.schedule_id, m.occurrence_at): m for m in found}
        known = book.announced(EventType.SCHEDULE_MISSED, list(subjects))
        events = [
            NewEvent(
                EventType.SCHEDULE_MISSED,
                subject,
                {
                    "schedule_id": m.schedule_id,
                    "occurrence_at": m.occurrence_at.isoformat(),
                    "recorded_at": m.recorded_at.isoformat(),
                    "note": m.note,
                },
            )
            for subject, m in subjects.items()
            if subject not in known
        ]
        return book.announce(events, self.subscribers, now) if events else 0


def _occurrence_subject(schedule_id: str, at: datetime) -> str:
    return f"{schedule_id}@{at.isoformat()}"
