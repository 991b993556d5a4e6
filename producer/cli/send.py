"""``threadcast send``: one broadcast to one or many channels."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer import status
from producer.client import Producer
from producer.sendtime import check_send_at, parse_instant
from producer.targets import read_targets
from threadcast import ids
from threadcast.contract import ContentType, Target
from threadcast.errors import ValidationError
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    send = commands.add_parser("send", help="send a broadcast to one or many channels")
    one = send.add_argument_group("one target")
    one.add_argument("--tenant")
    one.add_argument("--group")
    one.add_argument("--channel")
    send.add_argument("--targets", type=Path, help="CSV (tenant,group,channel) or JSON list")
    body = send.add_mutually_exclusive_group(required=True)
    body.add_argument("--text", help="plain-text content")
    body.add_argument("--html", help="HTML content")
    body.add_argument("--file", type=Path, help="content from a file (.html/.htm is HTML)")
    send.add_argument("--type", choices=["text", "html"], help="content type for --file")
    send.add_argument("--broadcast-id", help="your own id: re-sending it creates nothing new")
    send.add_argument("--source", default="cli", help="who sends (recorded)")
    send.add_argument("--watch", action="store_true", help="show progress until done")
    send.add_argument("--at", help="send time, ISO 8601 with offset: 2026-12-01T09:00:00+01:00")
    send.add_argument("--now-if-past", action="store_true", help="a past --at sends now")
    send.set_defaults(run=_send)


def _content(args: argparse.Namespace) -> tuple[str, ContentType]:
    if args.text is not None:
        return args.text, ContentType.TEXT
    if args.html is not None:
        return args.html, ContentType.HTML
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError("--file", str(path), f"cannot be read: {exc}") from None
    html = path.suffix.lower() in (".html", ".htm")
    return text, ContentType.parse("--type", args.type or ("html" if html else "text"))


def _targets(args: argparse.Namespace) -> list[Target]:
    single = (args.tenant, args.group, args.channel)
    if args.targets is not None:
        if any(single):
            raise ValidationError("--targets", str(args.targets), "excludes --tenant/--group")
        return read_targets(args.targets)
    if not all(single):
        raise ValidationError("--tenant/--group/--channel", None, "give all three, or --targets")
    return [
        Target(
            ids.guid("--tenant", args.tenant),
            ids.guid("--group", args.group),
            ids.channel_id("--channel", args.channel),
        )
    ]


def _send(args: argparse.Namespace, _rest: list[str]) -> int:
    content, content_type = _content(args)
    targets = _targets(args)
    send_at = None if args.at is None else parse_instant("--at", args.at)
    check_send_at("--at", send_at, datetime.now(UTC), now_if_past=args.now_if_past)
    with Producer(load_settings()) as producer:
        result = producer.send(
            content, targets, content_type=content_type, broadcast_id=args.broadcast_id,
            source=args.source, send_at=send_at, now_if_past=args.now_if_past,
        )  # fmt: skip
        if result.scheduled:
            print(f"scheduled for {args.at}: threadcast scheduler releases it then")
        if result.created:
            print(f"recorded {result.deliveries} deliveries; published {result.published}")
        else:
            print(f"already recorded: nothing new; re-published {result.published} still queued")
        if args.watch:
            status.watch(producer.ledger, result.broadcast_id)
    print(f"broadcast {result.broadcast_id}")
    return 0
