"""What to post and where: the content, message-part and target options ``send`` and
``schedule add`` share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from producer.client import message_parts
from producer.targets import read_targets, stream_targets
from threadcast import ids
from threadcast.contract import ContentType, Target
from threadcast.errors import ValidationError
from threadcast.message import Card, Image, Mention, MessageParts


def add_options(parser: argparse.ArgumentParser) -> None:
    """--tenant/--group/--channel or --targets; --text, --html or --file (with --type)."""
    one = parser.add_argument_group("one target")
    one.add_argument("--tenant")
    one.add_argument("--group")
    one.add_argument("--channel")
    parser.add_argument("--targets", type=Path, help="CSV (tenant,group,channel) or JSON list")
    add_content_options(parser)


def add_content_options(parser: argparse.ArgumentParser) -> None:
    """What to post, without where: --text, --html or --file (with --type), and the
    message-part flags (``threadcast edit`` takes these alone)."""
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--text", help="plain-text content")
    body.add_argument("--html", help="HTML content")
    body.add_argument("--file", type=Path, help="content from a file (.html/.htm is HTML)")
    parser.add_argument("--type", choices=["text", "html"], help="content type for --file")
    add_part_options(parser)


def add_part_options(parser: argparse.ArgumentParser) -> None:
    """--subject, --importance, --card, --image and the --mention-* flags."""
    parts = parser.add_argument_group("message parts (with any of them: the v1.0 endpoint)")
    parts.add_argument("--subject", help="the message's subject line (1-255 characters)")
    parts.add_argument(
        "--importance", default="normal", metavar="normal|high|urgent", help="(default normal)"
    )
    parts.add_argument(
        "--card",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="an Adaptive Card JSON file (repeatable); its id is the file's stem: place it "
        'with <attachment id="STEM"></attachment>, or it goes at the end',
    )
    parts.add_argument(
        "--image",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a PNG, JPEG or GIF file (repeatable), shown where the body has "
        '<img src="image:STEM">',
    )
    parts.add_argument(
        "--mention-user",
        dest="mentions",
        action="append",
        type=_tagged("user"),
        default=[],
        metavar="ID:USER_ID:NAME",
        help='mention a user (repeatable): the body has <at id="ID">NAME</at>; USER_ID is the '
        "user's Entra object id, NAME their display name",
    )
    parts.add_argument(
        "--mention-channel",
        dest="mentions",
        action="append",
        type=_tagged("channel"),
        default=[],
        metavar="ID:TEXT",
        help='mention each delivery\'s channel: <at id="ID">TEXT</at> in the body (repeatable)',
    )
    parts.add_argument(
        "--mention-team",
        dest="mentions",
        action="append",
        type=_tagged("team"),
        default=[],
        metavar="ID:TEXT",
        help='mention each delivery\'s team: <at id="ID">TEXT</at> in the body (repeatable)',
    )


def _tagged(kind: str) -> Callable[[str], tuple[str, str]]:
    """A --mention-* value with its kind: the three flags keep their order in one list."""

    def tag(value: str) -> tuple[str, str]:
        return kind, value

    return tag


def parts(args: argparse.Namespace, text: str, content_type: ContentType) -> MessageParts:
    """The message parts the flags give, each checked and checked against the content; an
    error names the flag (and the file or value)."""
    cards = [_card(path) for path in args.card]
    images = [_image(path) for path in args.image]
    mentions = [
        (f"--mention-{kind} {value}", _mention(f"--mention-{kind}", kind, value))
        for kind, value in args.mentions
    ]
    flags = {
        "cards": [f"--card {p}" for p in args.card],
        "images": [f"--image {p}" for p in args.image],
        "mentions": [flag for flag, _ in mentions],
    }
    try:
        made = message_parts(
            subject=None if args.subject is None else _argument("--subject", args.subject),
            importance=args.importance,
            cards=cards,
            images=images,
            mentions=[mention for _, mention in mentions],
        )
        if made.beyond_body:
            made.check(text, content_type is ContentType.HTML)
    except ValidationError as exc:
        raise _flagged(exc, flags) from None
    return made


_PART = re.compile(r"^(cards|images|mentions)\[(\d+)\]")
_FLAGS = {"subject": "--subject", "importance": "--importance", "content_type": "--text/--type"}


def _flagged(exc: ValidationError, flags: dict[str, list[str]]) -> ValidationError:
    """``cards[1].content: …`` as ``--card big.json: …``, ``subject`` as ``--subject``."""
    field = exc.field
    found = _PART.match(field)
    if found is not None:
        field = flags[found.group(1)][int(found.group(2))] + field[found.end() :]
    else:
        field = _FLAGS.get(field, field)
    return ValidationError(field, exc.value, exc.reason)


def _card(path: Path) -> Card:
    try:
        text = _file("--card", path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"--card {path}", str(path), "is not UTF-8 text") from None
    try:
        return Card.parse("card", path.stem, text)
    except ValidationError as exc:
        raise _of_file("--card", path, exc) from None


def _image(path: Path) -> Image:
    try:
        return Image.parse("image", path.stem, _file("--image", path))
    except ValidationError as exc:
        raise _of_file("--image", path, exc) from None


def _of_file(flag: str, path: Path, exc: ValidationError) -> ValidationError:
    """A part's error as the flag's: ``--card notes.json: is not JSON …``."""
    named = exc.field.endswith((".id", ".name"))
    reason = f"its name (the file's stem) {exc.reason}" if named else exc.reason
    return ValidationError(f"{flag} {path}", exc.value, reason)


def _file(flag: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(flag, str(path), f"cannot be read: {exc}") from None


def _mention(flag: str, kind: str, value: str) -> Mention:
    value = _argument(flag, value)
    pieces = value.split(":", 2 if kind == "user" else 1)
    shape = "ID:USER_ID:NAME" if kind == "user" else "ID:TEXT"
    if len(pieces) != (3 if kind == "user" else 2) or not pieces[0].isdigit():
        raise ValidationError(flag, value, f"must be {shape}, ID a number the body's <at> uses")
    raw: dict[str, object] = {"id": int(pieces[0]), "text": pieces[-1], "kind": kind}
    if kind == "user":
        raw |= {"user_id": pieces[1], "user_name": pieces[2]}
    try:
        return Mention.parse("mention", raw)
    except ValidationError as exc:
        part = exc.field.removeprefix("mention").lstrip(".")
        raise ValidationError(flag, value, f"{part or 'it'} {exc.reason}") from None


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
