"""The ``threadcast`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet

from producer import accounts, status
from producer.client import Producer
from producer.signin import sign_in
from producer.targets import read_targets
from threadcast import ids
from threadcast.constants import QUEUE
from threadcast.contract import ContentType, Target
from threadcast.errors import ConfigError, ThreadcastError, ValidationError
from threadcast.ledger import Ledger
from threadcast.settings import load_settings

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("worker", "sim"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args, rest))
    except (ValidationError, ConfigError) as exc:
        print(f"threadcast: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ThreadcastError as exc:
        print(f"threadcast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadcast", description="Post announcements into Microsoft Teams channels."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _send_parser(commands.add_parser("send", help="send a broadcast to one or many channels"))
    st = commands.add_parser("status", help="counts per state and the latest errors")
    st.add_argument("broadcast_id")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.add_argument("--watch", action="store_true", help="live progress until done")
    st.set_defaults(run=_status)
    login = commands.add_parser("login", help="sign a tenant in (device-code flow)")
    login.add_argument("--tenant", required=True, help="tenant id (GUID)")
    login.set_defaults(run=_login)
    accounts = commands.add_parser("accounts", help="signed-in tenants and their state")
    accounts.add_argument("--json", action="store_true", help="a JSON list")
    accounts.set_defaults(run=_accounts)
    logout = commands.add_parser("logout", help="remove a tenant's token cache")
    logout.add_argument("--tenant", required=True, help="tenant id (GUID)")
    logout.set_defaults(run=_logout)
    key = commands.add_parser("genkey", help="print a new THREADCAST_TOKEN_CACHE_KEY")
    key.set_defaults(run=lambda _a, _r: print(Fernet.generate_key().decode()) or 0)
    worker = commands.add_parser("worker", help="run a Celery worker (extra args go to celery)")
    worker.set_defaults(run=_worker)
    demo = commands.add_parser("demo", help="run the whole pipeline against the simulator")
    demo.set_defaults(run=lambda _a, _r: __import__("producer.demo").demo.main())
    sim = commands.add_parser("sim", help="run the Microsoft identity + Graph simulator")
    sim.set_defaults(run=_sim)
    return parser


def _send_parser(send: argparse.ArgumentParser) -> None:
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
    with Producer(load_settings()) as producer:
        result = producer.send(
            content, targets, content_type=content_type, broadcast_id=args.broadcast_id,
            source=args.source,
        )  # fmt: skip
        if result.created:
            print(f"recorded {result.deliveries} deliveries; published {result.published}")
        else:
            print(f"already recorded: nothing new; re-published {result.published} still queued")
        if args.watch:
            status.watch(producer.ledger, result.broadcast_id)
    print(f"broadcast {result.broadcast_id}")
    return 0


def _status(args: argparse.Namespace, _rest: list[str]) -> int:
    ledger = Ledger.open(load_settings().database_url)
    try:
        data = (status.watch if args.watch else status.report)(ledger, args.broadcast_id)
    finally:
        ledger.close()
    print(status.dumps(data) if args.json else status.render(data))
    return 0


def _login(args: argparse.Namespace, _rest: list[str]) -> int:
    user, resumed = sign_in(load_settings(), args.tenant, lambda text: print(text, flush=True))
    print(f"signed in tenant {args.tenant} as {user}; resumed {resumed} waiting deliveries")
    return 0


def _accounts(args: argparse.Namespace, _rest: list[str]) -> int:
    found = accounts.list_accounts(load_settings())
    print(accounts.dumps(found) if args.json else accounts.render(found))
    return 0


def _logout(args: argparse.Namespace, _rest: list[str]) -> int:
    tenant = ids.guid("--tenant", args.tenant)
    accounts.log_out(load_settings(), tenant)
    print(f"removed the token cache of tenant {tenant}; its deliveries will wait for a sign-in")
    return 0


def _worker(_args: argparse.Namespace, rest: list[str]) -> int:
    settings = load_settings()
    accounts.check_key(settings)
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", QUEUE]
    if not any(a.startswith(("--loglevel", "-l")) for a in rest):
        command += ["--loglevel", settings.log_level]
    os.execv(sys.executable, command + rest)  # noqa: S606 - replaces this process on purpose


def _sim(_args: argparse.Namespace, rest: list[str]) -> int:
    os.execv(sys.executable, [sys.executable, "-m", "simulator", *rest])  # noqa: S606


if __name__ == "__main__":
    sys.exit(main())
