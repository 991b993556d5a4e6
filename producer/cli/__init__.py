"""The ``threadcast`` command line: one module per group of commands, each with ``register``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from producer.cli import (
    api,
    audience,
    auth,
    change,
    doctor,
    operate,
    processes,
    schedule,
    send,
    status,
    webhooks,
)
from producer.cli import list as listing
from threadcast.errors import ConfigError, ThreadcastError, ValidationError

EXIT_USAGE = 2
#: Commands that hand unknown arguments on to another program (celery, the simulator).
PASS_THROUGH = frozenset({"worker", "sim"})
GROUPS = (
    send,
    status,
    change,
    listing,
    operate,
    auth,
    processes,
    api,
    schedule,
    doctor,
    audience,
    webhooks,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in PASS_THROUGH:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadcast", description="Post announcements into Microsoft Teams channels."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser
