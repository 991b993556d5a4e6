"""``threadcast send``: one broadcast to one or many channels."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from producer import audiences, status
from producer.cli import message
from producer.client import Producer
from producer.sendtime import check_send_at, parse_instant
from threadcast.contract import Target
from threadcast.dispatch import Limits
from threadcast.errors import AudienceError
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    send = commands.add_parser("send", help="send a broadcast to one or many channels")
    message.add_options(send)
    send.add_argument("--broadcast-id", help="your own id: re-sending it creates nothing new")
    send.add_argument("--source", default="cli", help="who sends (recorded)")
    send.add_argument("--watch", action="store_true", help="show progress until done")
    send.add_argument("--at", help="send time, ISO 8601 with offset: 2026-12-01T09:00:00+01:00")
    send.add_argument("--now-if-past", action="store_true", help="a past --at sends now")
    send.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="SPEC",
        help="channels resolved through Graph now (repeatable): 'tenant=T;channel=NAME' (that "
        "channel in every team the tenant's signed-in user joined), 'tenant=T;team=G' (every "
        "channel of team G), 'saved=NAME' (threadcast audience save); with or without targets",
    )
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and print the targets, their count per tenant and how long the send "
        "would take under the limits and backlog; store and send nothing",
    )
    send.set_defaults(run=_send)


def _send(args: argparse.Namespace, _rest: list[str]) -> int:
    content, content_type = message.content(args)
    parts = message.parts(args, content, content_type)
    audiences.parse_specs("--audience", args.audience)  # before reading anything else
    targets = _target_stream(args)  # read as the send commits it, a chunk at a time
    send_at = None if args.at is None else parse_instant("--at", args.at)
    check_send_at("--at", send_at, datetime.now(UTC), now_if_past=args.now_if_past)
    with Producer(load_settings()) as producer:
        resolution = _resolve(producer, args)
        if args.dry_run:
            _dry_run(producer, resolution, targets)
            return 0
        targets = chain(targets, resolution.targets)
        # The send makes a few short-lived objects per target and no garbage cycles worth a
        # collection: with the cyclic collector on, it walks the whole long-lived heap again
        # and again while a big file is published (1,000,000 targets: about 3 s of 25).
        collecting = gc.isenabled()
        gc.disable()
        try:
            result = producer.send(
                content,
                targets,
                content_type=content_type,
                broadcast_id=args.broadcast_id,
                source=args.source,
                send_at=send_at,
                now_if_past=args.now_if_past,
                parts=parts,
            )
        finally:
            if collecting:  # --watch runs on for as long as the broadcast does
                gc.enable()
        if result.scheduled:
            print(f"scheduled for {args.at}: threadcast scheduler launches it then")
        if result.created:
            print(f"recorded {result.deliveries} deliveries; published {result.published}")
        else:
            print(f"already recorded: nothing new; re-published {result.published} still queued")
        if args.watch:
            status.watch(
                producer.ledger,
                result.broadcast_id,
                endpoint=producer.settings.endpoint,
                limits=Limits.from_settings(producer.settings),
            )
    print(f"broadcast {result.broadcast_id}")
    return 0


def _resolve(producer: Producer, args: argparse.Namespace) -> audiences.Resolution:
    if not args.audience:
        return audiences.Resolution()
    resolution = producer.resolve(args.audience, where="--audience")
    if not resolution.targets:
        raise AudienceError("--audience", args.audience, "resolved to no channel")
    return resolution


def _dry_run(
    producer: Producer, resolution: audiences.Resolution, targets: Iterator[Target]
) -> None:
    """Print what the send would do; store nothing."""
    explicit = list(targets)
    if explicit:
        resolution.add("(--tenant/--group/--channel or --targets)", explicit)
    print(audiences.render(resolution, producer.estimate(resolution.targets)))


def _target_stream(args: argparse.Namespace) -> Iterator[Target]:
    """The explicit targets; none needed beside --audience."""
    given = args.targets is not None or any((args.tenant, args.group, args.channel))
    if args.audience and not given:
        return iter(())
    return message.target_stream(args)
