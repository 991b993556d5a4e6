"""``threadcast webhooks``: the endpoints of THREADCAST_WEBHOOKS with their state and counts,
the recent events and each endpoint's delivery of them, resuming a paused endpoint, and a
fresh secret. See docs/WEBHOOKS.md."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from producer import webhooks
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.webhooks import EventRecord
from threadcast.settings import Settings, load_settings
from threadcast.webhooks import new_secret

MAX_EVENTS = 1000


def register(commands: Any) -> None:
    hooks = commands.add_parser(
        "webhooks", help="signed webhook events: endpoints, recent events, resume a paused one"
    )
    hooks.add_argument("--json", action="store_true", help="as GET /v1/webhooks answers")
    hooks.set_defaults(run=_endpoints)
    actions = hooks.add_subparsers(dest="action")
    events = actions.add_parser("events", help="recent events and each endpoint's delivery")
    events.add_argument("--limit", type=int, default=20, help=f"at most {MAX_EVENTS}")
    events.add_argument("--json", action="store_true", help="as GET /v1/webhooks/events")
    events.set_defaults(run=_events)
    resume = actions.add_parser("resume", help="resume a paused endpoint: its events go again")
    resume.add_argument("name")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(run=_resume)
    secret = actions.add_parser("secret", help="print a new secret (whsec_…) for an endpoint")
    secret.set_defaults(run=_secret)


def _with_ledger(action: Callable[[Settings, Ledger], int]) -> int:
    settings = load_settings()
    ledger = Ledger.open(settings.database_url)
    try:
        return action(settings, ledger)
    finally:
        ledger.close()


def _endpoints(args: argparse.Namespace, _rest: list[str]) -> int:
    def show(settings: Settings, ledger: Ledger) -> int:
        views = webhooks.overview(ledger, settings.webhook_endpoints)
        if args.json:
            print(json.dumps({"endpoints": [v.to_json() for v in views]}, indent=2))
            return 0
        if not views:
            print("no webhook endpoints (set THREADCAST_WEBHOOKS: docs/WEBHOOKS.md)")
        for view in views:
            data = view.to_json()
            print(
                f"{view.name:<20} {view.state:<14} pending {data['pending']:>5}  "
                f"delivered {data['delivered']:>6}  failed {data['failed']:>4}  "
                f"last {_when(view.last_attempt_at)}{_status(view.last_status)}"
            )
            print(f"  {view.url or '-'}  events: {', '.join(view.events) or '-'}")
            if view.pause_reason:
                print(f"  paused {_when(view.paused_at)}: {view.pause_reason}")
                print(f"  resume: threadcast webhooks resume {view.name}")
            elif view.consecutive_failures:
                print(
                    f"  failing: {view.consecutive_failures} in a row since "
                    f"{_when(view.failing_since)}: {view.last_error}"
                )
        return 0

    return _with_ledger(show)


def _events(args: argparse.Namespace, _rest: list[str]) -> int:
    if not 1 <= args.limit <= MAX_EVENTS:
        raise ValidationError("--limit", args.limit, f"must be 1 to {MAX_EVENTS}")

    def show(_settings: Settings, ledger: Ledger) -> int:
        events = webhooks.recent_events(ledger, args.limit)
        if args.json:
            print(json.dumps({"events": [e.to_json() for e in events]}, indent=2))
            return 0
        if not events:
            print("no webhook events yet")
        for event in events:
            _print_event(event)
        return 0

    return _with_ledger(show)


def _print_event(event: EventRecord) -> None:
    print(f"{_when(event.created_at)}  {event.type:<26} {event.subject}  ({event.id})")
    for d in event.deliveries:
        detail = ""
        if d.state.value == "pending" and d.attempts:
            detail = f", next {_when(d.next_attempt_at)}: {d.last_error}"
        elif d.state.value == "failed":
            detail = f": {d.last_error}"
        print(f"    {d.endpoint:<20} {d.state.value:<9} {d.attempts} attempts{detail}")


def _resume(args: argparse.Namespace, _rest: list[str]) -> int:
    def resume(settings: Settings, ledger: Ledger) -> int:
        done = webhooks.resume(ledger, settings.webhook_endpoints, args.name, datetime.now(UTC))
        if args.json:
            print(json.dumps(done.to_json(), indent=2))
            return 0
        was = "resumed" if done.was_paused else "was not paused"
        print(f"webhook endpoint {done.name} {was}; {done.pending} pending events go now")
        return 0

    return _with_ledger(resume)


def _secret(_args: argparse.Namespace, _rest: list[str]) -> int:
    print(new_secret())
    return 0


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status(status: int | None) -> str:
    return "" if status is None else f" (HTTP {status})"
