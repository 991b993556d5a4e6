"""``threadcast edit``, ``recall`` and ``changes``: change or withdraw what a broadcast sent,
and see what became of each delivery's message (needs THREADCAST_CHANGES=true to change)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from producer import change_reports
from producer.changes import require_enabled
from producer.cli import message
from producer.client import Producer
from producer.reports import ChangeList
from threadcast import ids
from threadcast.ledger import Ledger
from threadcast.ledger.changes import Made
from threadcast.settings import load_settings

_JSON_MADE = "print the change as one JSON object (as the HTTP API answers it)"


def register(commands: Any) -> None:
    edit = commands.add_parser(
        "edit",
        help="change every message a broadcast sent into a new one (THREADCAST_CHANGES=true)",
        description="The edit is a whole new message, given as `send` takes one; every "
        "message the broadcast created is PATCHed into it by the workers, and deliveries sent "
        "later are edited once sent. Asked again, the same edit sends its failed deliveries "
        "again.",
    )
    edit.add_argument("broadcast_id", metavar="BROADCAST")
    message.add_content_options(edit)
    edit.add_argument("--source", default="cli", help="who asks (recorded)")
    edit.add_argument("--json", action="store_true", help=_JSON_MADE)
    edit.set_defaults(run=_edit)
    recall = commands.add_parser(
        "recall",
        help="withdraw a broadcast: cancel what was not sent, delete every message it sent "
        "(THREADCAST_CHANGES=true)",
    )
    recall.add_argument("broadcast_id", metavar="BROADCAST")
    recall.add_argument("--source", default="cli", help="who asks (recorded)")
    recall.add_argument("--json", action="store_true", help=_JSON_MADE)
    recall.set_defaults(run=_recall)
    changes = commands.add_parser(
        "changes", help="a broadcast's edits and recall: deliveries per state, error groups"
    )
    changes.add_argument("broadcast_id", metavar="BROADCAST")
    changes.add_argument(
        "--attempts",
        metavar="DELIVERY_ID",
        help="also the delivery's state and attempt log (PATCH or softDelete) in each change",
    )
    changes.add_argument(
        "--json", action="store_true", help="one JSON object, as GET /v1/broadcasts/{id}/changes"
    )
    changes.set_defaults(run=_changes)


def _edit(args: argparse.Namespace, _rest: list[str]) -> int:
    broadcast_id = ids.broadcast_id("BROADCAST", args.broadcast_id)
    settings = load_settings()
    require_enabled(settings)  # before any file is read
    content, content_type = message.content(args)
    parts = message.parts(args, content, content_type)
    with Producer(settings) as producer:
        made = producer.edit(
            broadcast_id, content, content_type=content_type, parts=parts, source=args.source
        )
    print(json.dumps(made.to_json(), indent=2) if args.json else describe(made))
    return 0


def _recall(args: argparse.Namespace, _rest: list[str]) -> int:
    broadcast_id = ids.broadcast_id("BROADCAST", args.broadcast_id)
    settings = load_settings()
    require_enabled(settings)
    with Producer(settings) as producer:
        made = producer.recall(broadcast_id, source=args.source)
    print(json.dumps(made.to_json(), indent=2) if args.json else describe(made))
    return 0


def describe(made: Made) -> str:
    """The change in a few lines; its id is the last word."""
    change = made.change
    lines = [change_reports.summary(change)]
    if not made.created:
        lines.append(f"the same {change.kind.value} was asked for before: nothing new")
    if made.superseded:
        lines.append(f"superseded: {', '.join(made.superseded)}")
    if made.again:
        lines.append(f"asked again: {made.again} go again")
    lines.append(f"broadcast {change.broadcast_id}, change {change.id}")
    return "\n".join(lines)


def _changes(args: argparse.Namespace, _rest: list[str]) -> int:
    broadcast_id = ids.broadcast_id("BROADCAST", args.broadcast_id)
    delivery_id = None if args.attempts is None else ids.guid("--attempts", args.attempts)
    ledger = Ledger.open(load_settings().database_url)
    try:
        ledger.broadcasts.source(broadcast_id)  # an unknown id: NotFoundError
        reports = change_reports.change_reports(ledger, broadcast_id)
        found = (
            change_reports.delivery_attempts(ledger, broadcast_id, delivery_id)
            if delivery_id is not None and reports
            else []
        )
    finally:
        ledger.close()
    listed = ChangeList(broadcast_id=broadcast_id, changes=reports)
    if args.json:
        shown: dict[str, Any] = listed.model_dump(mode="json")
        if delivery_id is not None:
            shown["attempts"] = [f.model_dump(mode="json") for f in found]
        print(json.dumps(shown, indent=2))
        return 0
    if not reports:
        print(f"broadcast {broadcast_id}: no edit or recall")
        return 0
    many = "s" if len(reports) != 1 else ""
    lines = [f"broadcast {broadcast_id}: {len(reports)} change{many} (edits and recall)"]
    by_change = {f.change_id: f for f in found}
    for report in reports:
        lines += change_reports.render(report, "  ")
        if report.id in by_change:
            lines += change_reports.render_attempts(by_change[report.id], "    ")
    print("\n".join(lines))
    return 0
