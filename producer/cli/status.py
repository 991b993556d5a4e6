"""``threadcast status``: where a broadcast's deliveries stand, once or live (``--watch``)."""

from __future__ import annotations

import argparse
from typing import Any

from producer import status
from threadcast.dispatch.limits import Limits
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.settings import load_settings

MAX_INTERVAL = 3600.0


def register(commands: Any) -> None:
    st = commands.add_parser("status", help="counts per state and the latest errors")
    st.add_argument("broadcast_id")
    st.add_argument(
        "--json", action="store_true", help="one JSON object, as GET /v1/broadcasts/{id} answers"
    )
    st.add_argument(
        "--watch",
        action="store_true",
        help="live progress until done: the bar, the send rate, the time left (from the rate "
        "and the configured limits) and what waits and why; Ctrl-C stops (exit 130)",
    )
    st.add_argument(
        "--interval",
        type=float,
        metavar="S",
        help="--watch: seconds between refreshes (default 0.5 on a terminal, 2 otherwise)",
    )
    st.set_defaults(run=_status)


def _status(args: argparse.Namespace, _rest: list[str]) -> int:
    if args.interval is not None:
        if not args.watch:
            raise ValidationError("--interval", args.interval, "needs --watch")
        if not 0 < args.interval <= MAX_INTERVAL:
            raise ValidationError(
                "--interval", args.interval, f"must be more than 0 and at most {MAX_INTERVAL:g}"
            )
    settings = load_settings()
    ledger = Ledger.open(settings.database_url)
    try:
        if args.watch:
            data = status.watch(
                ledger,
                args.broadcast_id,
                endpoint=settings.endpoint,
                limits=Limits.from_settings(settings),
                interval=args.interval,
            )
        else:
            data = status.report(ledger, args.broadcast_id, settings.endpoint)
    finally:
        ledger.close()
    print(status.dumps(data) if args.json else status.render(data))
    return 0
