"""``threadcast status``: where a broadcast's deliveries stand."""

from __future__ import annotations

import argparse
from typing import Any

from producer import status
from threadcast.ledger import Ledger
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    st = commands.add_parser("status", help="counts per state and the latest errors")
    st.add_argument("broadcast_id")
    st.add_argument(
        "--json", action="store_true", help="one JSON object, as GET /v1/broadcasts/{id} answers"
    )
    st.add_argument("--watch", action="store_true", help="live progress until done")
    st.set_defaults(run=_status)


def _status(args: argparse.Namespace, _rest: list[str]) -> int:
    settings = load_settings()
    ledger = Ledger.open(settings.database_url)
    try:
        if args.watch:
            data = status.watch(ledger, args.broadcast_id, endpoint=settings.endpoint)
        else:
            data = status.report(ledger, args.broadcast_id, settings.endpoint)
    finally:
        ledger.close()
    print(status.dumps(data) if args.json else status.render(data))
    return 0
