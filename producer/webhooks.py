"""What an operator sees of webhooks, shared by ``threadcast webhooks`` and ``/v1/webhooks``:
the endpoints with their state and counts, the recent events with each endpoint's delivery,
and resuming a paused endpoint. Secrets are never part of any of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from threadcast.errors import NotFoundError
from threadcast.ledger import Ledger
from threadcast.ledger.webhooks import EndpointRecord, EventRecord, WebhookState
from threadcast.webhooks import WebhookEndpoint

ACTIVE = "active"
PAUSED = "paused"
#: In the ledger (it has deliveries) but no longer in THREADCAST_WEBHOOKS: nothing is sent.
UNCONFIGURED = "not_configured"


@dataclass(frozen=True)
class EndpointView:
    name: str
    url: str | None
    events: list[str]
    state: str
    paused_at: datetime | None
    pause_reason: str | None
    consecutive_failures: int
    failing_since: datetime | None
    counts: dict[str, int]
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "state": self.state,
            "paused_at": _iso(self.paused_at),
            "pause_reason": self.pause_reason,
            "consecutive_failures": self.consecutive_failures,
            "failing_since": _iso(self.failing_since),
            "pending": self.counts.get(WebhookState.PENDING.value, 0),
            "delivered": self.counts.get(WebhookState.DELIVERED.value, 0),
            "failed": self.counts.get(WebhookState.FAILED.value, 0),
            "last_attempt_at": _iso(self.last_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class Resumed:
    name: str
    was_paused: bool
    pending: int  # its pending deliveries, due again now

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "was_paused": self.was_paused, "pending": self.pending}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def shown_url(url: str) -> str:
    """The URL without its query string, which may carry a token."""
    return url.split("?", 1)[0] + ("?…" if "?" in url else "")


def overview(ledger: Ledger, endpoints: Sequence[WebhookEndpoint]) -> list[EndpointView]:
    """Every configured endpoint, then any the ledger still has deliveries for."""
    records = ledger.webhooks.endpoints()
    counts = ledger.webhooks.counts()
    views = [_view(e.name, e, records.get(e.name), counts.get(e.name, {})) for e in endpoints]
    configured = {e.name for e in endpoints}
    for name in sorted(set(counts) - configured):
        views.append(_view(name, None, records.get(name), counts[name]))
    return views


def _view(
    name: str,
    endpoint: WebhookEndpoint | None,
    record: EndpointRecord | None,
    counts: dict[str, int],
) -> EndpointView:
    paused = record is not None and record.paused_at is not None
    state = UNCONFIGURED if endpoint is None else (PAUSED if paused else ACTIVE)
    return EndpointView(
        name=name,
        url=None if endpoint is None else shown_url(endpoint.url),
        events=[] if endpoint is None else endpoint.describe_events(),
        state=state,
        paused_at=None if record is None else record.paused_at,
        pause_reason=None if record is None else record.pause_reason,
        consecutive_failures=0 if record is None else record.consecutive_failures,
        failing_since=None if record is None else record.failing_since,
        counts={s.value: counts.get(s.value, 0) for s in WebhookState},
        last_attempt_at=None if record is None else record.last_attempt_at,
        last_status=None if record is None else record.last_status,
        last_error=None if record is None else record.last_error,
    )


def recent_events(ledger: Ledger, limit: int) -> list[EventRecord]:
    return ledger.webhooks.recent(limit)


def resume(
    ledger: Ledger, endpoints: Sequence[WebhookEndpoint], name: str, now: datetime
) -> Resumed:
    """Unpause a configured endpoint; its pending deliveries are due again at once."""
    if name not in {e.name for e in endpoints}:
        names = ", ".join(e.name for e in endpoints) or "none (THREADCAST_WEBHOOKS is not set)"
        raise NotFoundError(f"no webhook endpoint named {name!r}; configured: {names}")
    was_paused, pending = ledger.webhooks.resume(name, now)
    return Resumed(name, was_paused, pending)
