"""A broadcast's edits and recall as every surface shows them: ``threadcast status``,
``threadcast changes`` / ``edit`` / ``recall`` and the HTTP API.

Built from the ledger's change book (threadcast/ledger/changes.py) into the typed reports of
producer/reports.py, and rendered as text here: one line per change (``edit #1 running: 120
done, 180 pending, 3 no_message_id (sent by chatthreads: no message id)``), its error groups
under it, and a delivery's attempt log in each change.
"""

from __future__ import annotations

from dataclasses import asdict

from producer.reports import (
    ChangeAttemptReport,
    ChangeErrors,
    ChangeReport,
    DeliveryAttempts,
)
from threadcast.errors import NotFoundError
from threadcast.ledger import Ledger
from threadcast.ledger.changes import ChangeBook, ChangeInfo, ItemState

#: What an item state means where a number alone would puzzle.
NOTES = {
    ItemState.NO_MESSAGE_ID.value: "sent by chatthreads: no message id",
    ItemState.NOT_SENT.value: "not sent: no message",
}
#: Error groups shown per change (the most frequent first).
ERROR_GROUPS = 5
#: The order the states are told in: what is done first, then what is left.
SHOWN = (
    ItemState.DONE,
    ItemState.PENDING,
    ItemState.IN_FLIGHT,
    ItemState.FAILED,
    ItemState.UNKNOWN,
    ItemState.NO_MESSAGE_ID,
    ItemState.NOT_SENT,
    ItemState.SUPERSEDED,
)


def counted(counts: dict[str, int]) -> str:
    """``120 done, 180 pending, 3 no_message_id (sent by chatthreads: no message id)``:
    the item states that have deliveries."""
    said = []
    for state in SHOWN:
        n = counts.get(state.value, 0)
        if n:
            note = NOTES.get(state.value)
            said.append(f"{n} {state.value}" + (f" ({note})" if note else ""))
    return ", ".join(said) or "no deliveries"


def summary(info: ChangeInfo) -> str:
    """``edit #1 running: 120 done, 180 pending``."""
    return f"{info.kind.value} #{info.number} {info.state.value}: {counted(info.counts)}"


def change_report(book: ChangeBook, info: ChangeInfo) -> ChangeReport:
    return ChangeReport(
        id=info.id,
        number=info.number,
        kind=info.kind.value,
        state=info.state.value,
        source=info.source,
        created_at=info.created_at,
        finished_at=info.finished_at,
        counts=dict(info.counts),
        errors=[
            ChangeErrors(state=state, error_code=code, example=example, count=n)
            for state, code, example, n in book.errors(info.id, ERROR_GROUPS)
        ],
        summary=summary(info),
    )


def change_reports(ledger: Ledger, broadcast_id: str) -> list[ChangeReport]:
    """The broadcast's changes, oldest first, each with its counts and error groups."""
    book = ledger.changes
    return [change_report(book, info) for info in book.of_broadcast(broadcast_id)]


def render(report: ChangeReport, indent: str = "") -> list[str]:
    """The change's line, its id, and its error groups under it."""
    lines = [f"{indent}{report.summary}  [change {report.id}]"]
    for group in report.errors:
        example = f": {group.example}" if group.example else ""
        lines.append(f"{indent}  {group.count:>6} {group.state} {group.error_code}{example}")
    return lines


def delivery_attempts(
    ledger: Ledger, broadcast_id: str, delivery_id: str, change_id: str | None = None
) -> list[DeliveryAttempts]:
    """The delivery's state and attempt log in each change of the broadcast (or in
    ``change_id`` only), oldest change first. NotFoundError: the change is not the
    broadcast's, or the delivery is in none of its changes."""
    if change_id is not None and ledger.changes.get(change_id).broadcast_id != broadcast_id:
        raise NotFoundError(f"no edit or recall with id {change_id!r}")
    found = ledger.changes.states_of(broadcast_id, delivery_id, change_id)
    if not found:
        where = "in broadcast" if change_id is None else f"in change {change_id!r} of broadcast"
        raise NotFoundError(f"no delivery with id {delivery_id!r} {where} {broadcast_id!r}")
    return [
        DeliveryAttempts(
            broadcast_id=broadcast_id,
            change_id=found_id,
            number=number,
            kind=kind,
            delivery_id=delivery_id,
            state=state,
            attempts=[
                ChangeAttemptReport(**asdict(attempt))
                for attempt in ledger.changes.attempts(found_id, delivery_id)
            ],
        )
        for found_id, number, kind, state in found
    ]


def render_attempts(found: DeliveryAttempts, indent: str = "") -> list[str]:
    """``delivery D in edit #1: done`` and a line per attempt."""
    lines = [f"{indent}delivery {found.delivery_id} in {found.kind} #{found.number}: {found.state}"]
    for a in found.attempts:
        status = f"HTTP {a.http_status}" if a.http_status is not None else "no answer"
        error = f" {a.error_code}: {a.error_message}" if a.error_code else ""
        took = f" in {a.latency_ms:.0f} ms" if a.latency_ms is not None else ""
        lines.append(
            f"{indent}  #{a.number} {a.started_at.isoformat()} by {a.worker}: "
            f"{a.outcome or 'in flight'} {status}{error}{took} [request-id {a.request_id}]"
        )
    if not found.attempts:
        lines.append(f"{indent}  no attempt made")
    return lines
