"""``threadcast audience save|list|show|delete``: saved audiences, by name.

A saved audience is a list of audience specs and/or explicit targets, stored in the ledger
and resolved through Graph each time a broadcast names it (``--audience saved=NAME``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer import audiences
from producer.targets import read_targets
from threadcast.contract import Target
from threadcast.errors import NotFoundError
from threadcast.ledger import Ledger
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    group = commands.add_parser("audience", help="saved audiences: save, list, show, delete")
    actions = group.add_subparsers(dest="action", required=True)
    save = actions.add_parser("save", help="save (or replace) a named audience")
    save.add_argument("name", help="1-64 letters, digits, '.', '_' or '-'")
    save.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="SPEC",
        help="'tenant=T;channel=NAME' or 'tenant=T;team=G[;channel=NAME]' (repeatable)",
    )
    save.add_argument("--targets", type=Path, help="explicit targets: CSV or JSON, as send")
    save.set_defaults(run=_save)
    listing = actions.add_parser("list", help="every saved audience")
    listing.add_argument("--json", action="store_true", help="a JSON list")
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="what a saved audience holds")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=_show)
    forget = actions.add_parser("delete", help="forget a saved audience")
    forget.add_argument("name")
    forget.set_defaults(run=_delete)


def _ledger() -> Ledger:
    return Ledger.open(load_settings().database_url)


def _save(args: argparse.Namespace, _rest: list[str]) -> int:
    name = audiences.saved_name("name", args.name)
    given: list[Target] = [] if args.targets is None else read_targets(args.targets)
    specs, targets = audiences.saved_definition("--audience", args.audience, given)
    ledger = _ledger()
    try:
        new = ledger.audiences.save(name, specs, targets, datetime.now(UTC))
    finally:
        ledger.close()
    what = "saved" if new else "replaced"
    print(f"{what} audience {name}: {len(specs)} audience specs, {len(targets)} targets")
    return 0


def _list(args: argparse.Namespace, _rest: list[str]) -> int:
    ledger = _ledger()
    try:
        found = ledger.audiences.all()
    finally:
        ledger.close()
    if args.json:
        print(json.dumps([saved.to_json() for saved in found], indent=2))
        return 0
    if not found:
        print("no saved audiences")
    for saved in found:
        print(
            f"{saved.name}: {len(saved.audiences)} audience specs, {len(saved.targets)} targets "
            f"(updated {saved.updated_at.isoformat()})"
        )
    return 0


def _show(args: argparse.Namespace, _rest: list[str]) -> int:
    ledger = _ledger()
    try:
        saved = ledger.audiences.get(args.name)
    finally:
        ledger.close()
    if saved is None:
        raise NotFoundError(f"no saved audience named {args.name!r}")
    if args.json:
        print(json.dumps(saved.to_json(), indent=2))
        return 0
    print(f"audience {saved.name} (updated {saved.updated_at.isoformat()})")
    for spec in saved.audiences:
        print(f"  audience {spec}")
    for target in saved.targets:
        print(f"  target {target['tenant']} {target['group']} {target['channel']}")
    return 0


def _delete(args: argparse.Namespace, _rest: list[str]) -> int:
    ledger = _ledger()
    try:
        gone = ledger.audiences.delete(args.name)
    finally:
        ledger.close()
    if not gone:
        raise NotFoundError(f"no saved audience named {args.name!r}")
    print(f"deleted audience {args.name}")
    return 0
