"""``threadcast list``: recent broadcasts, newest first, so an operator finds a lost id."""

from __future__ import annotations

import argparse
from typing import Any

from producer import listing
from threadcast.ledger import Ledger
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    ls = commands.add_parser("list", help="recent broadcasts, newest first, with their progress")
    ls.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only broadcasts with a delivery in this state (repeatable, or comma-separated)",
    )
    ls.add_argument("--source", help="only broadcasts sent by this API key name (or 'cli')")
    ls.add_argument(
        "--since",
        help="created at or after: ISO 8601 with offset, a date (UTC), or an age like 2h, 3d",
    )
    ls.add_argument("--until", help="created before: as --since")
    ls.add_argument(
        "--limit",
        type=int,
        default=listing.DEFAULT_LIMIT,
        help=f"at most this many (1-{listing.MAX_LIMIT}, default %(default)s)",
    )
    ls.add_argument(
        "--after", metavar="ID", help="the page after this broadcast (as the last page ends)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON list of broadcast summaries")
    ls.set_defaults(run=_list)


def _list(args: argparse.Namespace, _rest: list[str]) -> int:
    query = listing.query_from(
        states=args.state,
        source=args.source,
        since=args.since,
        until=args.until,
        limit=args.limit,
        after=args.after,
    )
    settings = load_settings()
    ledger = Ledger.open(settings.database_url)
    try:
        page = listing.list_broadcasts(ledger, query)
    finally:
        ledger.close()
    print(listing.dumps(page) if args.json else listing.render(page))
    return 0
