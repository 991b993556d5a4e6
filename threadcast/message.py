"""A message's parts beyond its body: subject, importance, Adaptive Cards, inline images and
mentions, as Graph v1.0's chatMessage carries them.

Checked whole before anything is stored (:meth:`MessageParts.check`): every error is a
``ValidationError`` naming the part (``cards[0]``, ``images[1]``, ``mentions[0].text``,
``message``). Stored once per broadcast (:meth:`MessageParts.to_json`), and turned into the
request body per delivery (:meth:`MessageParts.chat_message`: a channel or team mention names
the delivery's own channel or team).

How the body refers to the parts, as Graph requires:

- a card: ``<attachment id="ID"></attachment>``; a card the body does not place is appended
  at its end;
- an image: ``<img src="image:NAME">`` in the body, or ``"image:NAME"`` as a URL in a card;
  threadcast writes Graph's ``../hostedContents/N/$value`` in their place; every image is
  referenced somewhere;
- a mention: ``<at id="N">TEXT</at>``, for each mention and for nothing else.

A broadcast with any part goes by the v1.0 endpoint: the seed's ``chatthreads`` request
carries a body only.
"""

from __future__ import annotations

import base64
import binascii
import enum
import html as markup
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from threadcast import ids
from threadcast.constants import MAX_CONTENT_BYTES
from threadcast.errors import ValidationError
from threadcast.text import check_text

#: Graph's limit on a whole request (images included, base64): 4 MiB.
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
#: One inline image, at most (its base64 form must still fit the request).
MAX_IMAGE_BYTES: Final = 3 * 1024 * 1024
MAX_CARDS: Final = 10
MAX_IMAGES: Final = 10
MAX_MENTIONS: Final = 100
MAX_SUBJECT_CHARS: Final = 255
CARD_TYPE: Final = "application/vnd.microsoft.card.adaptive"

_SIGNATURES: Final = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ATTACHMENT = re.compile(r"""<attachment\s+id\s*=\s*["']([^"']*)["']""", re.I)
_AT = re.compile(r"""<at\s+id\s*=\s*["']?(\d+)["']?\s*>(.*?)</at>""", re.I | re.S)
# An image's place: the body's src="image:NAME" (a variable's value cannot make one: its
# quotes are escaped), a card's "image:NAME" string.
_BODY_IMAGE = re.compile(r"""(src\s*=\s*)(["'])image:([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\2""", re.I)
_CARD_IMAGE = re.compile(r'"image:([A-Za-z0-9][A-Za-z0-9_.-]{0,63})"')
# The longest team and channel ids a delivery may have: a size checked with them holds for
# every delivery (a channel or team mention carries its delivery's id).
_LONGEST_TEAM = "0" * 36
_LONGEST_CHANNEL = "9" * 256


class Importance(enum.StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @classmethod
    def parse(cls, field_name: str, value: object) -> Importance:
        if value not in ("normal", "high", "urgent"):
            raise ValidationError(field_name, value, "must be 'normal', 'high' or 'urgent'")
        return cls(str(value))


class MentionKind(enum.StrEnum):
    USER = "user"
    CHANNEL = "channel"  # the channel each delivery posts into
    TEAM = "team"  # the team of that channel


@dataclass(frozen=True)
class Card:
    """An Adaptive Card: its JSON text (an object whose ``type`` is ``AdaptiveCard``)."""

    id: str
    content: str

    @classmethod
    def parse(cls, where: str, card_id: object, content: object) -> Card:
        name = _name(f"{where}.id", card_id)
        if isinstance(content, Mapping):
            content = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        if not isinstance(content, str):
            raise ValidationError(f"{where}.content", content, "must be a card's JSON object")
        check_text(f"{where}.content", content)
        try:
            parsed = json.loads(content)
        except ValueError as exc:
            raise ValidationError(f"{where}.content", content, f"is not JSON: {exc}") from None
        if not isinstance(parsed, dict) or parsed.get("type") != "AdaptiveCard":
            raise ValidationError(
                f"{where}.content", content, 'must be an object with "type": "AdaptiveCard"'
            )
        return cls(name, json.dumps(parsed, separators=(",", ":"), ensure_ascii=False))


@dataclass(frozen=True)
class Image:
    """An inline image (a Graph hostedContent): PNG, JPEG or GIF, by its bytes."""

    name: str
    content_type: str
    data: bytes = field(repr=False)

    @classmethod
    def parse(cls, where: str, name: object, data: object, content_type: object = None) -> Image:
        checked = _name(f"{where}.name", name)
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError(f"{where}.data", "<text>", "is not base64") from None
        if not isinstance(data, bytes | bytearray) or not data:
            raise ValidationError(f"{where}.data", type(data).__name__, "must be image bytes")
        data = bytes(data)
        if len(data) > MAX_IMAGE_BYTES:
            raise ValidationError(
                f"{where}.data", f"<{len(data)} bytes>", f"must be at most {MAX_IMAGE_BYTES} bytes"
            )
        found = next((kind for kind, heads in _SIGNATURES.items() if data.startswith(heads)), None)
        if found is None:
            raise ValidationError(
                f"{where}.data", data[:8], "is not a PNG, JPEG or GIF image (by its first bytes)"
            )
        if content_type is not None and content_type != found:
            raise ValidationError(
                f"{where}.content_type", content_type, f"does not match its bytes ({found})"
            )
        return cls(checked, found, data)


@dataclass(frozen=True)
class Mention:
    """``<at id="ID">TEXT</at>`` in the body names a user, the channel or the team."""

    id: int
    text: str
    kind: MentionKind
    user_id: str | None = None  # a user's Entra object id (kind user)
    user_name: str | None = None  # shown by Teams for a user

    @classmethod
    def parse(cls, where: str, raw: object) -> Mention:
        if not isinstance(raw, Mapping):
            raise ValidationError(where, raw, "must be an object with id, text and kind")
        mention_id = raw.get("id")
        if not isinstance(mention_id, int) or isinstance(mention_id, bool) or mention_id < 0:
            raise ValidationError(f"{where}.id", mention_id, "must be a non-negative integer")
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 200:
            raise ValidationError(f"{where}.text", text, "must be 1-200 characters")
        check_text(f"{where}.text", text)
        kind_raw = raw.get("kind")
        if kind_raw not in ("user", "channel", "team"):
            raise ValidationError(f"{where}.kind", kind_raw, "must be 'user', 'channel' or 'team'")
        kind = MentionKind(str(kind_raw))
        user_id, user_name = raw.get("user_id"), raw.get("user_name")
        if kind is MentionKind.USER:
            user_id = ids.guid(f"{where}.user_id", user_id)
            if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 200:
                raise ValidationError(f"{where}.user_name", user_name, "must be 1-200 characters")
            check_text(f"{where}.user_name", user_name)
        elif user_id is not None or user_name is not None:
            raise ValidationError(where, raw, f"a {kind} mention takes no user_id or user_name")
        return cls(mention_id, text, kind, user_id, user_name)


@dataclass(frozen=True)
class MessageParts:
    """Everything of a message but its body. The default is a body-only message."""

    subject: str | None = None
    importance: Importance = Importance.NORMAL
    cards: tuple[Card, ...] = ()
    images: tuple[Image, ...] = ()
    mentions: tuple[Mention, ...] = ()

    @property
    def beyond_body(self) -> bool:
        """Whether the message needs the v1.0 endpoint (anything but a body)."""
        return self != MessageParts()

    def check(self, content: str, html: bool) -> None:
        """Every part well-formed and referenced as Graph requires, the whole within Graph's
        sizes; a ValidationError names the first part that is not."""
        if self.subject is not None:
            _check_subject(self.subject)
        _unique("cards", [c.id for c in self.cards], MAX_CARDS)
        _unique("images", [i.name for i in self.images], MAX_IMAGES)
        _unique("mentions", [m.id for m in self.mentions], MAX_MENTIONS)
        if (self.cards or self.images or self.mentions) and not html:
            raise ValidationError(
                "content_type",
                "text",
                "must be 'html' for a message with cards, images or mentions",
            )
        self._check_references(content)
        _check_mentions(self.mentions, content)
        self.check_size(content, html)

    def _check_references(self, content: str) -> None:
        cards = {c.id for c in self.cards}
        for placed in _ATTACHMENT.findall(content):
            if placed not in cards:
                raise ValidationError(
                    "content", f'<attachment id="{placed}">', "places a card that is not given"
                )
        images = {i.name for i in self.images}
        used: set[str] = set()
        places = [("content", [m[2] for m in _BODY_IMAGE.findall(content)])]
        places += [
            (f"cards[{n}].content", _CARD_IMAGE.findall(card.content))
            for n, card in enumerate(self.cards)
        ]
        for where, names in places:
            for name in names:
                if name not in images:
                    raise ValidationError(where, f"image:{name}", "no such image")
                used.add(name)
        for n, image in enumerate(self.images):
            if image.name not in used:
                raise ValidationError(
                    f"images[{n}]",
                    image.name,
                    f'is not referenced: write <img src="image:{image.name}"> in the body '
                    f'or "image:{image.name}" as a URL in a card',
                )

    def check_size(self, content: str, html: bool, subject: str | None = None) -> None:
        """The message as sent within Graph's sizes: its text (body, subject, cards, mention
        texts) 28 KB, the whole request 4 MiB. ``subject``: a filled-in subject in place of
        the stored one (personal text). Cheap: images are counted, not encoded."""
        parts = self if subject is None else replace(self, subject=subject)
        message = replace(parts, images=()).chat_message(
            content, html, _LONGEST_TEAM, _LONGEST_CHANNEL, _numbers(self.images)
        )
        text = len(message["body"]["content"].encode()) + len((parts.subject or "").encode())
        text += sum(len(a["content"].encode()) for a in message.get("attachments", []))
        text += sum(len(m.text.encode()) for m in self.mentions)
        if text > MAX_CONTENT_BYTES:
            raise ValidationError(
                "message",
                f"<{text} bytes of text>",
                "body, subject, cards and mention texts together must be at most "
                f"{MAX_CONTENT_BYTES} bytes (28 KB) as sent",
            )
        size = len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())
        size += sum(4 * ((len(i.data) + 2) // 3) + 120 for i in self.images)
        if size > MAX_REQUEST_BYTES:
            raise ValidationError(
                "message",
                f"<{size} bytes>",
                f"with its images must be at most {MAX_REQUEST_BYTES} bytes (4 MiB) as sent",
            )

    def chat_message(
        self,
        content: str,
        html: bool,
        team: str,
        channel: str,
        numbers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The v1.0 chatMessage for one delivery (to ``channel`` of ``team``). ``numbers``:
        the images' hostedContents ids by name (their order in ``images`` by default)."""
        numbers = _numbers(self.images) if numbers is None else numbers

        def hosted(name: str) -> str:
            return f"../hostedContents/{numbers.get(name, name)}/$value"

        body = _BODY_IMAGE.sub(lambda m: f"{m[1]}{m[2]}{hosted(m[3])}{m[2]}", content)
        placed = set(_ATTACHMENT.findall(body))
        body += "".join(
            f'<attachment id="{c.id}"></attachment>' for c in self.cards if c.id not in placed
        )
        message: dict[str, Any] = {
            "body": {"contentType": "html" if html else "text", "content": body}
        }
        if self.subject is not None:
            message["subject"] = self.subject
        if self.importance is not Importance.NORMAL:
            message["importance"] = self.importance.value
        if self.cards:
            message["attachments"] = [
                {
                    "id": c.id,
                    "contentType": CARD_TYPE,
                    "content": _CARD_IMAGE.sub(lambda m: f'"{hosted(m[1])}"', c.content),
                }
                for c in self.cards
            ]
        if self.images:
            message["hostedContents"] = [
                {
                    "@microsoft.graph.temporaryId": numbers[i.name],
                    "contentBytes": base64.b64encode(i.data).decode(),
                    "contentType": i.content_type,
                }
                for i in self.images
            ]
        if self.mentions:
            message["mentions"] = [_mentioned(m, team, channel) for m in self.mentions]
        return message

    def to_json(self) -> str | None:
        """The stored form (None for a body-only message)."""
        if not self.beyond_body:
            return None
        return json.dumps(
            {
                "subject": self.subject,
                "importance": self.importance.value,
                "cards": [{"id": c.id, "content": c.content} for c in self.cards],
                "images": [
                    {
                        "name": i.name,
                        "type": i.content_type,
                        "data": base64.b64encode(i.data).decode(),
                    }
                    for i in self.images
                ],
                "mentions": [
                    {
                        "id": m.id,
                        "text": m.text,
                        "kind": m.kind.value,
                        "user_id": m.user_id,
                        "user_name": m.user_name,
                    }
                    for m in self.mentions
                ],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str | None) -> MessageParts:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            data.get("subject"),
            Importance(data.get("importance", "normal")),
            tuple(Card(c["id"], c["content"]) for c in data.get("cards", [])),
            tuple(
                Image(i["name"], i["type"], base64.b64decode(i["data"]))
                for i in data.get("images", [])
            ),
            tuple(
                Mention(
                    m["id"], m["text"], MentionKind(m["kind"]), m.get("user_id"), m.get("user_name")
                )
                for m in data.get("mentions", [])
            ),
        )

    def describe(self) -> str:
        """One line for ``status``: what the message carries beside its body."""
        said = []
        if self.subject is not None:
            said.append("a subject")
        if self.importance is not Importance.NORMAL:
            said.append(f"importance {self.importance.value}")
        for name, items in (
            ("card", self.cards),
            ("image", self.images),
            ("mention", self.mentions),
        ):
            if items:
                said.append(f"{len(items)} {name}{'s' if len(items) > 1 else ''}")
        return ", ".join(said) or "a body only"


def _numbers(images: Sequence[Image]) -> dict[str, str]:
    return {image.name: str(n + 1) for n, image in enumerate(images)}


def _name(where: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            where, value, "must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return value


def _unique(where: str, names: Sequence[object], most: int) -> None:
    if len(names) > most:
        raise ValidationError(where, f"<{len(names)}>", f"must be at most {most}")
    seen: set[object] = set()
    for n, name in enumerate(names):
        if name in seen:
            raise ValidationError(f"{where}[{n}]", name, "repeats an id given before")
        seen.add(name)


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
        raise ValidationError("subject", subject, f"must be 1-{MAX_SUBJECT_CHARS} characters")
    check_text("subject", subject)


def _check_mentions(mentions: Sequence[Mention], content: str) -> None:
    placed = {int(number): text for number, text in _AT.findall(content)}
    given = {m.id for m in mentions}
    for number in placed:
        if number not in given:
            raise ValidationError(
                "content", f'<at id="{number}">', "names a mention that is not given"
            )
    for n, mention in enumerate(mentions):
        if mention.id not in placed:
            raise ValidationError(
                f"mentions[{n}]",
                mention.id,
                f'the body does not reference it: write <at id="{mention.id}">{mention.text}</at>',
            )
        if markup.unescape(placed[mention.id]) != mention.text:
            raise ValidationError(
                f"mentions[{n}].text",
                mention.text,
                f"differs from the body's <at> text {placed[mention.id]!r}",
            )


def _mentioned(mention: Mention, team: str, channel: str) -> dict[str, Any]:
    if mention.kind is MentionKind.USER:
        mentioned: dict[str, Any] = {
            "user": {
                "id": mention.user_id,
                "displayName": mention.user_name,
                "userIdentityType": "aadUser",
            }
        }
    else:
        mentioned = {
            "conversation": {
                "id": channel if mention.kind is MentionKind.CHANNEL else team,
                "displayName": mention.text,
                "conversationIdentityType": mention.kind.value,
            }
        }
    return {"id": mention.id, "mentionText": mention.text, "mentioned": mentioned}
