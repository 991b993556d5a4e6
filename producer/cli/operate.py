"""Operator commands on broadcasts: ``retry``, ``cancel`` and ``export``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer import export
from producer.client import Producer, retry_state
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.states import parse_states
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    retry = commands.add_parser("retry", help="re-queue failed or unknown deliveries")
    retry.add_argument("broadcast_id")
    retry.add_argument(
        "--state",
        default="failed,unknown",
        help="comma-separated: failed, unknown, cancelled, waiting_auth (%(default)s)",
    )
    retry.add_argument("--error-code", help="only deliveries whose last error has this code")
    retry.add_argument("--tenant", help="only this tenant's deliveries")
    retry.set_defaults(run=_retry)
    cancel = commands.add_parser("cancel", help="stop everything of a broadcast not yet sent")
    cancel.add_argument("broadcast_id")
    cancel.set_defaults(run=_cancel)
    export = commands.add_parser("export", help="deliveries with all their attempts (audit)")
    export.add_argument("broadcast_id", nargs="?", help="one broadcast (default: all)")
    export.add_argument("--since", help="only deliveries changed at or after (ISO 8601)")
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    export.add_argument("--output", type=Path, help="a file (default: standard output)")
    export.set_defaults(run=_export)


def _retry(args: argparse.Namespace, _rest: list[str]) -> int:
    states = [retry_state("--state", s) for s in parse_states("--state", args.state)]
    with Producer(load_settings()) as producer:
        count = producer.retry(
            args.broadcast_id, states, error_code=args.error_code, tenant=args.tenant
        )
    print(f"re-queued {count} deliveries of broadcast {args.broadcast_id}")
    return 0


def _cancel(args: argparse.Namespace, _rest: list[str]) -> int:
    with Producer(load_settings()) as producer:
        count = producer.cancel(args.broadcast_id)
    print(f"cancelled {count} deliveries of broadcast {args.broadcast_id}")
    return 0


def _export(args: argparse.Namespace, _rest: list[str]) -> int:
    since = _since(args.since)
    ledger = Ledger.open(load_settings().database_url)
    try:
        if args.broadcast_id is not None:
            ledger.broadcasts.info(args.broadcast_id)  # unknown id: an error, no empty file
        changes = export.ChangeStates(ledger.changes, args.broadcast_id)
        with export.destination(args.output) as out:
            records = ledger.audit.records(args.broadcast_id, since)
            count = export.write(records, args.format, out, changes)
    finally:
        ledger.close()
    if args.output is not None:
        print(f"exported {count} deliveries to {args.output}")
    return 0


def _since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError("--since", raw, "must be an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
