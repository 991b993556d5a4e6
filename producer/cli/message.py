"""What to post and where: the content and target options ``send`` and ``schedule add`` share."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from producer.targets import read_targets, stream_targets
from threadcast import ids
from threadcast.contract import ContentType, Target
from threadcast.errors import ValidationError


def add_options(parser: argparse.ArgumentParser) -> None:
    """--tenant/--group/--channel or --targets; --text, --html or --file (with --type)."""
    one = parser.add_argument_group("one target")
    one.add_argument("--tenant")
    one.add_argument("--group")
    one.add_argument("--channel")
    parser.add_argument("--targets", type=Path, help="CSV (tenant,group,channel) or JSON list")
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--text", help="plain-text content")
    body.add_argument("--html", help="HTML content")
    body.add_argument("--file", type=Path, help="content from a file (.html/.htm is HTML)")
    parser.add_argument("--type", choices=["text", "html"], help="content type for --file")


def content(args: argparse.Namespace) -> tuple[str, ContentType]:
    """The content and its type, as the options give them."""
    if args.text is not None:
        return _argument("--text", args.text), ContentType.TEXT
    if args.html is not None:
        return _argument("--html", args.html), ContentType.HTML
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError("--file", str(path), f"cannot be read: {exc}") from None
    html = path.suffix.lower() in (".html", ".htm")
    return text, ContentType.parse("--type", args.type or ("html" if html else "text"))


def _argument(option: str, value: str) -> str:
    # Python reads argv bytes that are not UTF-8 as lone surrogates (surrogateescape).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            option, value, "is not UTF-8 text (check the terminal's encoding, or use --file)"
        ) from None
    return value


def targets(args: argparse.Namespace) -> list[Target]:
    """The targets, validated: one from --tenant/--group/--channel, or a --targets file."""
    if _from_file(args):
        return read_targets(args.targets)
    return _single(args)


def target_stream(args: argparse.Namespace) -> Iterator[Target]:
    """As :func:`targets`, but a --targets file is read as it is iterated (its rows are
    validated then): a big file never sits in memory."""
    if _from_file(args):
        return stream_targets(args.targets)
    return iter(_single(args))


def _from_file(args: argparse.Namespace) -> bool:
    if args.targets is None:
        return False
    if any((args.tenant, args.group, args.channel)):
        raise ValidationError("--targets", str(args.targets), "excludes --tenant/--group")
    return True


def _single(args: argparse.Namespace) -> list[Target]:
    single = (args.tenant, args.group, args.channel)
    if not all(single):
        raise ValidationError("--tenant/--group/--channel", None, "give all three, or --targets")
    return [
        Target(
            ids.guid("--tenant", args.tenant),
            ids.guid("--group", args.group),
            ids.channel_id("--channel", args.channel),
        )
    ]
