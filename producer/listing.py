"""``threadcast list``: recent broadcasts, newest first, with their progress.

:func:`list_broadcasts` reads one page in two queries whatever the ledger's size: the page's
``broadcasts`` rows (newest first, keyset-paged on (created_at, id)), then the deliveries of
just those broadcasts counted per state in one grouped query that the (broadcast_id, state)
index answers. A ``--state`` filter probes that same index for one row per candidate; no
delivery is read more than once. Each broadcast becomes a
:class:`~producer.reports.BroadcastSummary`, the shape the HTTP API can list with too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producer.reports import BroadcastPage, BroadcastSummary
from producer.sendtime import parse_instant
from producer.status import MOVING, SETTLED
from threadcast.contract import ContentType
from threadcast.errors import ValidationError
from threadcast.ledger import DeliveryState, Ledger
from threadcast.ledger.states import parse_states

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class ListQuery:
    """What ``threadcast list`` asks for, validated (:func:`query_from`)."""

    states: tuple[DeliveryState, ...] = ()
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    after: str | None = None


def parse_time(flag: str, text: str, now: datetime) -> datetime:
    """An instant from ``--since``/``--until``: ISO 8601 with a UTC offset, a date alone
    (midnight UTC), or an age like ``90s``, ``15m``, ``2h``, ``3d``, ``1w`` (that long before
    ``now``). Anything else is a ValidationError naming ``flag``."""
    raw = text.strip()
    relative = _RELATIVE.fullmatch(raw)
    if relative:
        amount, unit = relative.groups()
        try:
            return now - timedelta(**{_UNITS[unit]: int(amount)})
        except (OverflowError, ValueError):
            raise ValidationError(flag, text, "is too far back") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        return parse_instant(flag, raw)
    except ValidationError as exc:
        raise ValidationError(
            flag, text, f"{exc.reason}, or an age like 2h, 3d (s, m, h, d, w)"
        ) from None


def query_from(
    *,
    states: Sequence[str] = (),
    source: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
    now: datetime | None = None,
    prefix: str = "--",
) -> ListQuery:
    """Validate the CLI's flags (a ``--state`` may name several, comma-separated); errors
    name them with ``prefix`` (``--limit``; the HTTP API's query parameters: ``limit``)."""
    now = now or datetime.now(UTC)
    chosen: list[DeliveryState] = []
    for raw in states:
        for state in parse_states(f"{prefix}state", raw):
            if state not in chosen:
                chosen.append(state)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"{prefix}limit", limit, f"must be 1-{MAX_LIMIT}")
    start = parse_time(f"{prefix}since", since, now) if since is not None else None
    end = parse_time(f"{prefix}until", until, now) if until is not None else None
    if start is not None and end is not None and end <= start:
        raise ValidationError(
            f"{prefix}until", until, f"must be after {prefix}since ({start.isoformat()})"
        )
    if source is not None and not source.strip():
        raise ValidationError(f"{prefix}source", source, "must not be empty")
    return ListQuery(tuple(chosen), source, start, end, limit, after)


def list_broadcasts(ledger: Ledger, query: ListQuery, prefix: str = "--") -> BroadcastPage:
    """One page of broadcasts, newest first; ``next_after`` names the last one when another
    page follows. An ``after`` that names no broadcast is a ValidationError (``--after``)."""
    cursor = None
    if query.after is not None:
        created = ledger.broadcasts.created(query.after)
        if created is None:
            raise ValidationError(f"{prefix}after", query.after, "names no broadcast")
        cursor = (created, query.after)
    # One extra row says whether another page follows, without a COUNT.
    rows = ledger.broadcasts.listing(
        states=query.states,
        source=query.source,
        since=query.since,
        until=query.until,
        after=cursor,
        limit=query.limit + 1,
    )
    page = rows[: query.limit]
    counts = ledger.broadcasts.counts_of([row.id for row in page])
    summaries = [
        BroadcastSummary(
            broadcast_id=row.id,
            source=row.source,
            content_type=ContentType(row.content_type),
            created_at=row.created_at,
            send_at=row.send_at,
            cancelled_at=row.cancelled_at,
            total=row.target_count,
            counts=counts[row.id],
            settled=sum(counts[row.id][s.value] for s in SETTLED),
            done=not any(counts[row.id][s.value] for s in MOVING),
        )
        for row in page
    ]
    more = len(rows) > query.limit
    return BroadcastPage(broadcasts=summaries, next_after=page[-1].id if more else None)


def dumps(page: BroadcastPage) -> str:
    """``list --json``: a JSON list of the page's summaries, as the API would show them."""
    return json.dumps([s.model_dump(mode="json") for s in page.broadcasts], indent=2)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _progress(s: BroadcastSummary) -> str:
    share = 100 * s.settled // max(1, s.total)
    return f"{s.settled}/{s.total} {share}%"


def _standing(s: BroadcastSummary) -> str:
    if s.cancelled_at is not None:
        return "cancelled"
    return "done" if s.done else "moving"


def _states(s: BroadcastSummary) -> str:
    return ", ".join(
        f"{state.value} {s.counts[state.value]}" for state in DeliveryState if s.counts[state.value]
    )


def render(page: BroadcastPage) -> str:
    """A table, one broadcast a line, and how to get the next page."""
    if not page.broadcasts:
        return "no broadcasts match"
    header = ("BROADCAST", "SOURCE", "CREATED", "SEND AT", "PROGRESS", "STATUS", "DELIVERIES")
    rows = [
        (
            s.broadcast_id,
            s.source,
            _when(s.created_at),
            _when(s.send_at),
            _progress(s),
            _standing(s),
            _states(s),
        )
        for s in page.broadcasts
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in (header, *rows)
    ]
    if page.next_after is not None:
        lines.append(f"more: threadcast list --after {page.next_after} (same filters)")
    return "\n".join(line.rstrip() for line in lines)
