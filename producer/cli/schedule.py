"""``threadcast schedule …`` (recurring announcements) and ``threadcast scheduler`` (the process
that launches them and one-off ``send --at`` broadcasts). See docs/SCHEDULING.md."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from producer.cli import message
from producer.scheduler import Schedules, Upcoming, run_scheduler
from producer.scheduler.cron import Recurrence, zone
from producer.scheduler.schedules import check_schedule_id
from producer.sendtime import parse_instant
from threadcast import metrics
from threadcast.ledger.schedules import OccurrenceRecord, ScheduleRecord
from threadcast.logs import configure_logging
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    scheduler = commands.add_parser(
        "scheduler",
        help="launch scheduled broadcasts and recurring schedules when due (run one or more)",
    )
    scheduler.set_defaults(run=_scheduler)
    schedule = commands.add_parser("schedule", help="recurring announcements")
    actions = schedule.add_subparsers(dest="action", required=True)
    _register_add(actions)
    listing = actions.add_parser("list", help="schedules and their next occurrence")
    listing.add_argument("--all", action="store_true", help="include deleted schedules")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="one schedule, its next and its recorded occurrences")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_show)
    for name, text in (
        ("pause", "stop firing until resumed"),
        ("resume", "fire again"),
        ("delete", "never fire again (kept on record)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("id")
        action.set_defaults(run=_change, change=name)
    upcoming = actions.add_parser("next", help="the next occurrences")
    upcoming.add_argument("id")
    upcoming.add_argument("--count", type=int, default=5)
    upcoming.add_argument("--json", action="store_true")
    upcoming.set_defaults(run=_next)
    skip = actions.add_parser("skip", help="skip one occurrence before it fires")
    skip.add_argument("id")
    skip.add_argument("--at", required=True, help="the occurrence, as `schedule next` shows it")
    skip.set_defaults(run=_skip)


def _register_add(actions: Any) -> None:
    add = actions.add_parser("add", help="add a recurring announcement")
    add.add_argument("--cron", required=True, help="e.g. '0 9 * * MON' (in --tz)")
    add.add_argument("--tz", required=True, help="IANA time zone, e.g. Europe/Berlin")
    add.add_argument("--id", help="your own schedule id (letters, digits, '_', '-')")
    add.add_argument("--grace", type=int, help="seconds an occurrence may still go out late")
    add.add_argument("--source", default="cli", help="who schedules (recorded)")
    message.add_options(add)
    add.set_defaults(run=_add)


def _scheduler(_args: argparse.Namespace, _rest: list[str]) -> int:
    settings = load_settings()
    configure_logging(settings)
    server = metrics.serve(settings)
    try:
        run_scheduler(settings)
    finally:
        if server is not None:
            server.stop()
    return 0


def _with_schedules(action: Callable[[Schedules], int]) -> int:
    with Schedules(load_settings()) as schedules:
        return action(schedules)


def _add(args: argparse.Namespace, _rest: list[str]) -> int:
    content, content_type = message.content(args)
    parts = message.parts(args, content, content_type)
    targets = message.targets(args)
    Recurrence.parse(args.cron, args.tz, cron_field="--cron", tz_field="--tz")
    if args.id is not None:
        check_schedule_id("--id", args.id)

    def add(schedules: Schedules) -> int:
        record = schedules.add(
            args.cron,
            args.tz,
            content,
            targets,
            content_type=content_type,
            schedule_id=args.id,
            grace=args.grace,
            source=args.source,
            parts=parts,
        )
        print(_describe(record))
        print(f"next: {_when(schedules.next(record.id, 1)[0])}")
        print(f"schedule {record.id}")
        return 0

    return _with_schedules(add)


def _list(args: argparse.Namespace, _rest: list[str]) -> int:
    def show(schedules: Schedules) -> int:
        records = schedules.list(include_deleted=args.all)
        rows = [(r, _first(schedules, r)) for r in records]
        if args.json:
            print(json.dumps([_as_json(r) | {"next": _next_json(n)} for r, n in rows], indent=2))
            return 0
        if not rows:
            print("no schedules")
        for record, upcoming in rows:
            nxt = _when(upcoming) if upcoming else "-"
            print(
                f"{record.id:<16} {record.state:<8} {record.cron!r:<22} {record.timezone:<20} "
                f"{len(record.targets):>6} targets  next {nxt}"
            )
        return 0

    return _with_schedules(show)


def _show(args: argparse.Namespace, _rest: list[str]) -> int:
    def show(schedules: Schedules) -> int:
        record = schedules.get(args.id)
        upcoming = schedules.next(record.id, 3)
        history = schedules.history(record.id, 10)
        if args.json:
            data = _as_json(record) | {
                "next": [_next_json(u) for u in upcoming],
                "occurrences": [_occurrence_json(o) for o in history],
            }
            print(json.dumps(data, indent=2))
            return 0
        print(_describe(record))
        print("next:" if upcoming else "next: never")
        for item in upcoming:
            print(f"  {_when(item)}")
        print("recorded occurrences (newest first):" if history else "no occurrences yet")
        tz = zone("timezone", record.timezone)
        for occurrence in history:
            print(f"  {_occurrence_line(occurrence, tz)}")
        return 0

    return _with_schedules(show)


def _change(args: argparse.Namespace, _rest: list[str]) -> int:
    def change(schedules: Schedules) -> int:
        record = getattr(schedules, args.change)(args.id)
        print(f"schedule {record.id} is {record.state}")
        return 0

    return _with_schedules(change)


def _next(args: argparse.Namespace, _rest: list[str]) -> int:
    def show(schedules: Schedules) -> int:
        upcoming = schedules.next(args.id, args.count)
        if args.json:
            print(json.dumps([_next_json(u) for u in upcoming], indent=2))
            return 0
        for item in upcoming:
            print(_when(item))
        return 0

    return _with_schedules(show)


def _skip(args: argparse.Namespace, _rest: list[str]) -> int:
    at = parse_instant("--at", args.at)

    def skip(schedules: Schedules) -> int:
        new = schedules.skip(args.id, at)
        print(f"{'skipped' if new else 'already skipped'}: schedule {args.id} at {at.isoformat()}")
        return 0

    return _with_schedules(skip)


def _describe(record: ScheduleRecord) -> str:
    return (
        f"schedule {record.id} ({record.state}): {record.cron!r} in {record.timezone}, "
        f"{len(record.targets)} targets, {record.content_type.value} content"
        f"{' (personal)' if record.personal else ''} with {record.parts.describe()}, "
        f"grace {record.grace_seconds} s, from {record.source}"
    )


def _first(schedules: Schedules, record: ScheduleRecord) -> Upcoming | None:
    if record.state != "active":
        return None
    found = schedules.next(record.id, 1)
    return found[0] if found else None


def _when(item: Upcoming) -> str:
    utc = item.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{item.local.isoformat()} ({utc}){'  skipped' if item.skipped else ''}"


def _next_json(item: Upcoming | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"at": item.at.isoformat(), "local": item.local.isoformat(), "skipped": item.skipped}


def _as_json(record: ScheduleRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "state": record.state.value,
        "cron": record.cron,
        "timezone": record.timezone,
        "content_type": record.content_type.value,
        "parts": record.parts.describe(),
        "personal": record.personal,
        "targets": len(record.targets),
        "source": record.source,
        "grace_seconds": record.grace_seconds,
        "created_at": record.created_at.isoformat(),
    }


def _occurrence_json(occurrence: OccurrenceRecord) -> dict[str, Any]:
    return {
        "at": occurrence.at.isoformat(),
        "state": occurrence.state.value,
        "broadcast": occurrence.broadcast_id,
        "note": occurrence.note,
    }


def _occurrence_line(occurrence: OccurrenceRecord, tz: ZoneInfo) -> str:
    utc = occurrence.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{occurrence.at.astimezone(tz).isoformat()} ({utc})  {occurrence.state.value}"
    if occurrence.broadcast_id:
        line += f"  broadcast {occurrence.broadcast_id}"
    return line + (f"  ({occurrence.note})" if occurrence.note else "")
