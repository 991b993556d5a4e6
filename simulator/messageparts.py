"""The parts of a v1.0 chatMessage beside its body, checked as Graph checks them.

``subject`` (a string or null), ``importance`` (``normal``, ``high``, ``urgent``),
``attachments`` (chatMessageAttachment: Adaptive Cards and other cards, whose ``content`` is
the card's JSON as a STRING, and file references), ``hostedContents`` (inline images:
``@microsoft.graph.temporaryId``, base64 ``contentBytes``, ``contentType``) and ``mentions``
(chatMessageMention of a user, of the channel or of the team).

The body refers to them, and the references must agree both ways:
``<attachment id="X"></attachment>`` for each attachment, ``<at id="N">text</at>`` for each
mention (its text the mention's ``mentionText``), ``../hostedContents/T/$value`` (in the
body or in a card) for each hosted content. A body with any of them must be ``html``.

Sizes (Graph's answer is ``413 RequestEntityTooLarge``):

* :data:`MAX_MESSAGE_TEXT_BYTES`: Microsoft Teams accepts about 28 KB per message, "an
  approximate limit because it includes the message itself (text, image links, etc.),
  @-mentions, ..." (Microsoft Teams limits and specifications, "Messaging"). Counted here: the
  UTF-8 bytes of the body's content, the subject, the cards' content and the mentions' text.
  Images in ``hostedContents`` count separately, against:
* :data:`MAX_REQUEST_BYTES`: "Graph has a limit of 4 MB on all calls" and "while posting
  the maximum size is 4 MBs" (the Graph docs' owner for Teams messages, in
  microsoftgraph/microsoft-graph-docs#15594 and #15334; #19264 adds "maximum possible size of
  hosted content is 4MB"). The whole request, base64 images included.

Every violation is a :class:`~simulator.errors.GraphError` whose message names the part
(``attachments[0].content``, ``mentions[1].mentionText``, ``hostedContents[0].contentBytes``).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from simulator.errors import GraphError
from simulator.payload import bad_request

MAX_MESSAGE_TEXT_BYTES = 28 * 1024
MAX_REQUEST_BYTES = 4 * 1024 * 1024
IMPORTANCES = ("normal", "high", "urgent")
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
_CARD_PREFIX = "application/vnd.microsoft.card."
REFERENCE = "reference"
IMAGE_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
_ATTACHMENT_PROPERTIES = (
    "id",
    "contentType",
    "contentUrl",
    "content",
    "name",
    "thumbnailUrl",
    "teamsAppId",
)
_TEMPORARY_ID = "@microsoft.graph.temporaryId"
_HOSTED_PROPERTIES = (_TEMPORARY_ID, "contentBytes", "contentType")
_ATTACHMENT_TAG = re.compile(r"<attachment\b[^>]*?\bid\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
_AT_TAG = re.compile(r"<at\b([^>]*)>(.*?)</at\s*>", re.IGNORECASE | re.DOTALL)
_AT_ID = re.compile(r"\bid\s*=\s*[\"']?([^\"'\s>]*)", re.IGNORECASE)
_HOSTED_REF = re.compile(r"\.\./hostedContents/([^/\"'\s]+)/\$value")

Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class HostedContent:
    temporary_id: str
    content_type: str
    data: bytes

    def to_json(self) -> Json:
        return {
            "temporaryId": self.temporary_id,
            "contentType": self.content_type,
            "bytes": len(self.data),
        }


@dataclass(frozen=True, slots=True)
class MessageParts:
    """A chatMessage as a client wrote it: the body and its parts, normalised."""

    content_type: int
    """0 text, 1 html."""
    content: str
    subject: str | None = None
    importance: str = "normal"
    attachments: tuple[Json, ...] = ()
    mentions: tuple[Json, ...] = ()
    hosted_contents: tuple[HostedContent, ...] = ()

    def text_bytes(self) -> int:
        texts = [self.content, self.subject or ""]
        texts += [str(a["content"]) for a in self.attachments if a["content"] is not None]
        texts += [str(m["mentionText"]) for m in self.mentions]
        return sum(len(text.encode("utf-8")) for text in texts)

    def to_json(self) -> Json:
        return {
            "body": {"contentType": ("text", "html")[self.content_type], "content": self.content},
            "subject": self.subject,
            "importance": self.importance,
            "attachments": list(self.attachments),
            "mentions": list(self.mentions),
            "hostedContents": [hosted.to_json() for hosted in self.hosted_contents],
        }


def object_with(
    value: object, path: str, type_name: str, known: Collection[str], required: Iterable[str]
) -> Json:
    """``value`` (at ``path``) as a JSON object of ``known`` properties with the ``required``."""
    if not isinstance(value, dict):
        raise bad_request(f"'{path or 'the request body'}' must be a JSON object ({type_name}).")
    unknown = [name for name in value if name not in known]
    if unknown:
        raise bad_request(
            f"The property '{unknown[0]}' does not exist on type '{type_name}'"
            f"{f' (at {path})' if path else ''}. Make sure to only use property names that are "
            "defined by the type."
        )
    for name in required:
        if name not in value:
            raise bad_request(f"Required property '{_join(path, name)}' is missing.")
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _string(value: object, path: str, *, nullable: bool = False, empty: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "a string or null" if nullable else "a string"
        raise bad_request(f"{path} must be {kind}, got {json.dumps(value)}.")
    if not empty and not value.strip():
        raise bad_request(f"{path} must not be empty.")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise bad_request(f"{path} must be a JSON array, got {json.dumps(value)[:80]}.")
    return value


def _unique(seen: set[object], value: object, path: str) -> None:
    if value in seen:
        raise bad_request(f"{path} {json.dumps(value)} is used twice: ids must be unique.")
    seen.add(value)


# --- subject and importance ---------------------------------------------------------------------


def parse_subject(value: object) -> str | None:
    return _string(value, "subject", nullable=True, empty=True)


def parse_importance(value: object) -> str:
    if isinstance(value, str) and value in IMPORTANCES:
        return value
    raise bad_request(
        f"Cannot convert the literal {json.dumps(value)} to the expected type "
        '\'microsoft.graph.chatMessageImportance\': importance must be "normal", "high" or '
        '"urgent".'
    )


# --- attachments --------------------------------------------------------------------------------


def parse_attachments(value: object) -> tuple[Json, ...]:
    seen: set[object] = set()
    found = []
    for index, item in enumerate(_list(value, "attachments")):
        path = f"attachments[{index}]"
        attachment = object_with(
            item,
            path,
            "microsoft.graph.chatMessageAttachment",
            _ATTACHMENT_PROPERTIES,
            ("id", "contentType"),
        )
        normal: Json = {name: attachment.get(name) for name in _ATTACHMENT_PROPERTIES}
        _unique(seen, _string(normal["id"], f"{path}.id"), f"{path}.id")
        for name in ("contentUrl", "name", "thumbnailUrl", "teamsAppId"):
            _string(normal[name], f"{path}.{name}", nullable=True, empty=True)
        _check_attachment_content(normal, path)
        found.append(normal)
    return tuple(found)


def _check_attachment_content(attachment: Json, path: str) -> None:
    content_type = _string(attachment["contentType"], f"{path}.contentType")
    assert content_type is not None
    if content_type == REFERENCE:
        url = _string(attachment["contentUrl"], f"{path}.contentUrl")
        if not str(url).startswith("https://"):
            raise bad_request(f"{path}.contentUrl must be the https:// URL of the file.")
        return
    if not content_type.startswith(_CARD_PREFIX):
        raise bad_request(
            f"{path}.contentType '{content_type}' is not supported: a card "
            f"('{_CARD_PREFIX}...', e.g. '{ADAPTIVE_CARD}') or a file ('{REFERENCE}')."
        )
    card = _card_json(attachment["content"], f"{path}.content")
    if content_type == ADAPTIVE_CARD and card.get("type") != "AdaptiveCard":
        raise bad_request(
            f'{path}.content must be an Adaptive Card: its "type" must be "AdaptiveCard", '
            f"got {json.dumps(card.get('type'))}."
        )


def _card_json(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, str):
        raise bad_request(
            f"{path} must be the card's JSON serialised as a STRING, got {json.dumps(value)[:80]}."
        )
    try:
        card = json.loads(value)
    except ValueError as exc:
        raise bad_request(f"{path} is not valid JSON: {exc}.") from exc
    if not isinstance(card, dict):
        raise bad_request(f"{path} must be a JSON object (the card).")
    return card


# --- hostedContents -----------------------------------------------------------------------------


def parse_hosted_contents(value: object) -> tuple[HostedContent, ...]:
    seen: set[object] = set()
    found = []
    for index, item in enumerate(_list(value, "hostedContents")):
        path = f"hostedContents[{index}]"
        hosted = object_with(
            item,
            path,
            "microsoft.graph.chatMessageHostedContent",
            _HOSTED_PROPERTIES,
            _HOSTED_PROPERTIES,
        )
        temporary_id = _string(hosted[_TEMPORARY_ID], f"{path}.{_TEMPORARY_ID}")
        _unique(seen, temporary_id, f"{path}.{_TEMPORARY_ID}")
        content_type = _image_type(hosted["contentType"], f"{path}.contentType")
        data = _image_bytes(hosted["contentBytes"], content_type, f"{path}.contentBytes")
        found.append(HostedContent(str(temporary_id), content_type, data))
    return tuple(found)


def _image_type(value: object, path: str) -> str:
    if isinstance(value, str) and value in IMAGE_SIGNATURES:
        return value
    raise bad_request(
        f"{path} must be one of {', '.join(IMAGE_SIGNATURES)}, got {json.dumps(value)}."
    )


def _image_bytes(value: object, content_type: str, path: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{path} must be the image's bytes as a non-empty base64 string.")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{path} is not valid base64 ({exc}).") from exc
    if not data.startswith(IMAGE_SIGNATURES[content_type]):
        kind = content_type.split("/")[1].upper()
        raise bad_request(
            f"{path} is not a {kind} image: its first bytes do not match contentType "
            f"'{content_type}'."
        )
    return data


# --- mentions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Where:
    """The team and channel a message is in: what a mention of the team or channel names."""

    team_id: str
    channel_id: str


def parse_mentions(value: object, where: Where) -> tuple[Json, ...]:
    seen: set[object] = set()
    found: list[Json] = []
    for index, item in enumerate(_list(value, "mentions")):
        path = f"mentions[{index}]"
        mention = object_with(
            item,
            path,
            "microsoft.graph.chatMessageMention",
            ("id", "mentionText", "mentioned"),
            ("id", "mentionText", "mentioned"),
        )
        number = mention["id"]
        if type(number) is not int or number < 0:
            raise bad_request(
                f"{path}.id must be a non-negative integer, got {json.dumps(number)}."
            )
        _unique(seen, number, f"{path}.id")
        text = _string(mention["mentionText"], f"{path}.mentionText")
        mentioned = _mentioned(mention["mentioned"], f"{path}.mentioned", where)
        found.append({"id": number, "mentionText": text, "mentioned": mentioned})
    return tuple(found)


def _mentioned(value: object, path: str, where: Where) -> Json:
    kinds = ("user", "conversation", "application", "device")
    identity = object_with(
        value, path, "microsoft.graph.chatMessageMentionedIdentitySet", kinds, ()
    )
    given = [kind for kind in kinds if identity.get(kind) is not None]
    if given not in (["user"], ["conversation"]):
        raise bad_request(
            f"{path} must name exactly one of 'user' (a person) or 'conversation' (the channel "
            f"or the team), got {given or 'none'}."
        )
    normal: Json = {kind: None for kind in kinds}
    if given == ["user"]:
        normal["user"] = _mentioned_user(identity["user"], f"{path}.user")
    else:
        normal["conversation"] = _mentioned_conversation(
            identity["conversation"], f"{path}.conversation", where
        )
    return normal


def _mentioned_user(value: object, path: str) -> Json:
    names = ("id", "displayName", "userIdentityType", "tenantId")
    user = object_with(value, path, "microsoft.graph.teamworkUserIdentity", names, ("id",))
    _string(user["id"], f"{path}.id")
    _string(user.get("displayName"), f"{path}.displayName", nullable=True)
    kind = user.get("userIdentityType", "aadUser")
    if kind != "aadUser":
        raise bad_request(f'{path}.userIdentityType must be "aadUser", got {json.dumps(kind)}.')
    return {
        "id": user["id"],
        "displayName": user.get("displayName"),
        "userIdentityType": "aadUser",
        **({"tenantId": user["tenantId"]} if "tenantId" in user else {}),
    }


def _mentioned_conversation(value: object, path: str, where: Where) -> Json:
    names = ("id", "displayName", "conversationIdentityType")
    conversation = object_with(
        value, path, "microsoft.graph.teamworkConversationIdentity", names, names
    )
    conversation_id = str(_string(conversation["id"], f"{path}.id"))
    _string(conversation["displayName"], f"{path}.displayName")
    kind = conversation["conversationIdentityType"]
    expected = {"team": where.team_id, "channel": where.channel_id}
    if not isinstance(kind, str) or kind not in expected:
        raise bad_request(
            f'{path}.conversationIdentityType must be "channel" or "team", got {json.dumps(kind)}.'
        )
    if conversation_id.lower() != expected[kind].lower():
        raise bad_request(
            f"{path}.id '{conversation_id}' is not the {kind} the message is posted to "
            f"('{expected[kind]}'): a message can mention its own channel and team only."
        )
    return {
        "id": conversation_id,
        "displayName": conversation["displayName"],
        "conversationIdentityType": kind,
    }


# --- the whole message --------------------------------------------------------------------------


def check_message(parts: MessageParts) -> None:
    """The references between the body and its parts agree both ways; the text fits."""
    if (parts.attachments or parts.mentions or parts.hosted_contents) and parts.content_type != 1:
        raise bad_request(
            'body.contentType must be "html" when the message has attachments, mentions or '
            "hostedContents: the body refers to them with HTML tags."
        )
    _check_attachment_references(parts)
    _check_mention_references(parts)
    _check_hosted_references(parts)
    size = parts.text_bytes()
    if size > MAX_MESSAGE_TEXT_BYTES:
        raise GraphError(
            413,
            "RequestEntityTooLarge",
            f"The message is {size} bytes of text (body, subject, cards and mentions together): "
            f"Teams accepts about 28 KB ({MAX_MESSAGE_TEXT_BYTES} bytes) per message. "
            "Images in hostedContents count separately.",
        )


def _check_attachment_references(parts: MessageParts) -> None:
    referenced = _ATTACHMENT_TAG.findall(parts.content)
    ids = [str(attachment["id"]) for attachment in parts.attachments]
    for reference in referenced:
        if reference not in ids:
            raise bad_request(
                f'body.content refers to <attachment id="{reference}">, but attachments has no '
                "attachment with that id."
            )
    for index, attachment_id in enumerate(ids):
        if attachment_id not in referenced:
            raise bad_request(
                f"attachments[{index}] (id '{attachment_id}') is not referenced by body.content: "
                f'it must contain <attachment id="{attachment_id}"></attachment>.'
            )


def _check_mention_references(parts: MessageParts) -> None:
    by_id = {int(str(mention["id"])): index for index, mention in enumerate(parts.mentions)}
    referenced: set[int] = set()
    for attributes, inner in _AT_TAG.findall(parts.content):
        raw = _AT_ID.search(attributes)
        number = raw[1] if raw else ""
        if not number.isdigit() or int(number) not in by_id:
            raise bad_request(
                f'body.content has <at id="{number}">, but mentions has no mention with id '
                f"{number or '(none)'}."
            )
        index = by_id[int(number)]
        text = parts.mentions[index]["mentionText"]
        if html.unescape(re.sub(r"<[^>]*>", "", inner)) != text:
            raise bad_request(
                f"mentions[{index}].mentionText {json.dumps(text)} differs from the text of "
                f'<at id="{number}"> in body.content ({json.dumps(inner)}).'
            )
        referenced.add(int(number))
    for number, index in by_id.items():
        if number not in referenced:
            text = parts.mentions[index]["mentionText"]
            raise bad_request(
                f"mentions[{index}] (id {number}) is not referenced by body.content: it must "
                f'contain <at id="{number}">{text}</at>.'
            )


def _check_hosted_references(parts: MessageParts) -> None:
    places = {"body.content": parts.content}
    for index, attachment in enumerate(parts.attachments):
        if isinstance(attachment["content"], str):
            places[f"attachments[{index}].content"] = attachment["content"]
    ids = [hosted.temporary_id for hosted in parts.hosted_contents]
    referenced: set[str] = set()
    for place, text in places.items():
        for reference in _HOSTED_REF.findall(text):
            if reference not in ids:
                raise bad_request(
                    f"{place} refers to ../hostedContents/{reference}/$value, but hostedContents "
                    f"has no item with @microsoft.graph.temporaryId '{reference}'."
                )
            referenced.add(reference)
    for index, temporary_id in enumerate(ids):
        if temporary_id not in referenced:
            raise bad_request(
                f"hostedContents[{index}] (@microsoft.graph.temporaryId '{temporary_id}') is not "
                f"referenced: the body or a card must show it as "
                f"../hostedContents/{temporary_id}/$value."
            )


def hosted_content_urls(parts: MessageParts, message_url: str) -> Mapping[str, str]:
    """temporary id → the URL Graph answers with, once the message exists."""
    base = f"{message_url}/hostedContents"
    return {
        hosted.temporary_id: f"{base}/{hosted_content_id(message_url, hosted)}"
        for hosted in parts.hosted_contents
    }


def hosted_content_id(message_url: str, hosted: HostedContent) -> str:
    """A stable id in the shape Graph uses (base64 of ``id=...,type=1,url=...``)."""
    message_id = message_url.rsplit("/", 1)[-1]
    raw = f"id=x_{message_id}_{hosted.temporary_id},type=1,url={message_url}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def with_hosted_urls(text: str, urls: Mapping[str, str]) -> str:
    """``text`` with each ``../hostedContents/T/$value`` replaced by its Graph URL."""
    if not urls:
        return text
    return _HOSTED_REF.sub(
        lambda match: f"{urls[match[1]]}/$value" if match[1] in urls else match[0], text
    )
