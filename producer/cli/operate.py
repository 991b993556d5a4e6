"""Operator commands on a running broadcast: ``retry`` and ``cancel``."""

from __future__ import annotations

import argparse
from typing import Any

from producer.client import Producer
from threadcast.ledger.states import parse_states
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    retry = commands.add_parser("retry", help="re-queue failed or unknown deliveries")
    retry.add_argument("broadcast_id")
    retry.add_argument("--state", default="failed,unknown", help="comma-separated states")
    retry.add_argument("--error-code", help="only deliveries whose last error has this code")
    retry.add_argument("--tenant", help="only this tenant's deliveries")
    retry.set_defaults(run=_retry)
    cancel = commands.add_parser("cancel", help="stop everything of a broadcast not yet sent")
    cancel.add_argument("broadcast_id")
    cancel.set_defaults(run=_cancel)


def _retry(args: argparse.Namespace, _rest: list[str]) -> int:
    states = parse_states("--state", args.state)
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
