"""threadcast/message.py: every part checked before anything is stored, each error naming the
part, and the chatMessage threadcast builds being one Graph v1.0 (here: the simulator, which
checks the same parts as Graph) accepts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from simulator import messageparts as sim
from simulator.channelmessage import parse_message_parts
from simulator.errors import GraphError
from threadcast.constants import MAX_CONTENT_BYTES
from threadcast.errors import ValidationError
from threadcast.message import (
    CARD_TYPE,
    MAX_CARDS,
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    MAX_MENTIONS,
    MAX_REQUEST_BYTES,
    MAX_SUBJECT_CHARS,
    Card,
    Image,
    Importance,
    Mention,
    MentionKind,
    MessageParts,
)

TEAM = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
CHANNEL = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
USER = "8a3c1f5e-2b4d-4e6f-9a0b-1c2d3e4f5a6b"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
JPEG = b"\xff\xd8\xff\xe0" + bytes(24)
GIF = b"GIF89a" + bytes(24)
BMP = b"BM" + bytes(24)


def card(card_id: str = "c1", **extra: object) -> Card:
    return Card.parse("cards[0]", card_id, {"type": "AdaptiveCard", "version": "1.5", **extra})


def image(name: str = "logo", data: bytes = PNG) -> Image:
    return Image.parse("images[0]", name, data)


def mention(mention_id: int, text: str, kind: str = "user") -> Mention:
    raw: dict[str, object] = {"id": mention_id, "text": text, "kind": kind}
    if kind == "user":
        raw.update(user_id=USER, user_name=text)
    return Mention.parse("mentions[0]", raw)


def wire(message: dict[str, Any]) -> bytes:
    """The request body as the worker's HTTP client (httpx) sends a JSON body."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def graph(message: dict[str, Any], team: str = TEAM, channel: str = CHANNEL) -> sim.MessageParts:
    """The simulator's answer to the request: its parsed message, or a GraphError (400/413)."""
    body = wire(message)
    if len(body) > sim.MAX_REQUEST_BYTES:
        raise GraphError(413, "RequestEntityTooLarge", f"{len(body)} bytes")
    return parse_message_parts("application/json", body, sim.Where(team, channel))


def refused(parts: MessageParts, content: str, html: bool = True) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parts.check(content, html)
    return caught.value


# --- each part on its own --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card_id", "content", "field", "reason"),
    [
        ("bad id", {"type": "AdaptiveCard"}, "cards[0].id", "letters, digits"),
        ("", {"type": "AdaptiveCard"}, "cards[0].id", "letters, digits"),
        ("-c", {"type": "AdaptiveCard"}, "cards[0].id", "starting alphanumeric"),
        ("c" * 65, {"type": "AdaptiveCard"}, "cards[0].id", "1-64"),
        (7, {"type": "AdaptiveCard"}, "cards[0].id", "1-64"),
        ("c1", '{"type": "AdaptiveCard"', "cards[0].content", "is not JSON"),
        ("c1", "", "cards[0].content", "is not JSON"),
        ("c1", '{"type": "HeroCard"}', "cards[0].content", '"type": "AdaptiveCard"'),
        ("c1", {"body": []}, "cards[0].content", '"type": "AdaptiveCard"'),
        ("c1", '["AdaptiveCard"]', "cards[0].content", '"type": "AdaptiveCard"'),
        ("c1", 42, "cards[0].content", "card's JSON object"),
        ("c1", None, "cards[0].content", "card's JSON object"),
    ],
)
def test_card_errors_name_the_part(
    card_id: object, content: object, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Card.parse("cards[0]", card_id, content)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")


def test_card_from_text_or_object_is_stored_compact() -> None:
    from_object = Card.parse("cards[0]", "c1", {"type": "AdaptiveCard", "body": []})
    from_text = Card.parse("cards[0]", "c1", '{ "type" : "AdaptiveCard", "body" : [ ] }')
    assert from_object == from_text == Card("c1", '{"type":"AdaptiveCard","body":[]}')
    assert Card.parse("x", "c", {"type": "AdaptiveCard", "t": "é"}).content.endswith('"é"}')


@pytest.mark.parametrize(
    ("data", "content_type", "field", "reason"),
    [
        ("not base64!", None, "images[0].data", "is not base64"),
        ("iVBORw0KGgo", None, "images[0].data", "is not base64"),  # bad padding
        ("", None, "images[0].data", "must be image bytes"),
        (b"", None, "images[0].data", "must be image bytes"),
        (None, None, "images[0].data", "must be image bytes"),
        (PNG + bytes(MAX_IMAGE_BYTES + 1 - len(PNG)), None, "images[0].data", "at most"),
        (BMP, None, "images[0].data", "is not a PNG, JPEG or GIF"),
        (b"just some text, no image", None, "images[0].data", "is not a PNG, JPEG or GIF"),
        (base64.b64encode(BMP).decode(), None, "images[0].data", "is not a PNG, JPEG or GIF"),
        (PNG, "image/jpeg", "images[0].content_type", "does not match its bytes (image/png)"),
        (GIF, "image/png", "images[0].content_type", "does not match its bytes (image/gif)"),
        (JPEG, "image/bmp", "images[0].content_type", "does not match its bytes (image/jpeg)"),
    ],
)
def test_image_errors_name_the_part(
    data: object, content_type: object, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Image.parse("images[0]", "logo", data, content_type)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_image_at_the_size_limit_and_by_signature() -> None:
    largest = PNG + bytes(MAX_IMAGE_BYTES - len(PNG))
    assert len(Image.parse("images[0]", "big", largest).data) == MAX_IMAGE_BYTES
    assert Image.parse("i", "a", JPEG).content_type == "image/jpeg"
    assert Image.parse("i", "a", b"GIF87a" + bytes(4)).content_type == "image/gif"
    assert Image.parse("i", "a", GIF, "image/gif").content_type == "image/gif"
    from_text = Image.parse("i", "a", base64.b64encode(PNG).decode(), "image/png")
    assert from_text == Image("a", "image/png", PNG)
    assert Image.parse("i", "a", bytearray(PNG)).data == PNG
    with pytest.raises(ValidationError) as caught:
        Image.parse("images[3]", "../etc", PNG)
    assert caught.value.field == "images[3].name"


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ("@Ann", "mentions[0]", "id, text and kind"),
        ({"id": -1, "text": "A", "kind": "team"}, "mentions[0].id", "non-negative"),
        ({"id": True, "text": "A", "kind": "team"}, "mentions[0].id", "non-negative"),
        ({"id": "0", "text": "A", "kind": "team"}, "mentions[0].id", "non-negative"),
        ({"id": 0, "text": " ", "kind": "team"}, "mentions[0].text", "1-200"),
        ({"id": 0, "text": "a" * 201, "kind": "team"}, "mentions[0].text", "1-200"),
        ({"id": 0, "text": "A", "kind": "tag"}, "mentions[0].kind", "'user', 'channel' or 'team'"),
        ({"id": 0, "text": "Ann", "kind": "user", "user_name": "Ann"}, "mentions[0].user_id", ""),
        (
            {"id": 0, "text": "Ann", "kind": "user", "user_id": "ann", "user_name": "Ann"},
            "mentions[0].user_id",
            "GUID",
        ),
        ({"id": 0, "text": "Ann", "kind": "user", "user_id": USER}, "mentions[0].user_name", ""),
        (
            {"id": 0, "text": "Ann", "kind": "user", "user_id": USER, "user_name": ""},
            "mentions[0].user_name",
            "1-200",
        ),
        (
            {"id": 0, "text": "General", "kind": "channel", "user_id": USER},
            "mentions[0]",
            "a channel mention takes no user_id",
        ),
        (
            {"id": 0, "text": "Team", "kind": "team", "user_name": "Ann"},
            "mentions[0]",
            "a team mention takes no user_id",
        ),
    ],
)
def test_mention_errors_name_the_part(raw: object, field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Mention.parse("mentions[0]", raw)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_user_mention_keeps_its_user() -> None:
    raw = {"id": 3, "text": "Ann", "kind": "user", "user_id": USER.upper(), "user_name": "Ann L"}
    assert Mention.parse("m", raw) == Mention(3, "Ann", MentionKind.USER, USER, "Ann L")


def test_importance() -> None:
    assert Importance.parse("importance", "urgent") is Importance.URGENT
    for value in ("low", "HIGH", "", None, 1):
        with pytest.raises(ValidationError) as caught:
            Importance.parse("importance", value)
        assert caught.value.field == "importance"


# --- the whole message: references, counts, sizes -------------------------------------------


@pytest.mark.parametrize("subject", ["", "   ", "s" * (MAX_SUBJECT_CHARS + 1), "before\x00after"])
def test_subject_errors(subject: str) -> None:
    error = refused(MessageParts(subject=subject), "<p>hi</p>")
    assert error.field == "subject"


def test_subject_at_its_limit() -> None:
    MessageParts(subject="s" * MAX_SUBJECT_CHARS).check("hi", False)


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        (MessageParts(cards=(card("c1"), card("c2"), card("c1"))), "cards[2]"),
        (MessageParts(images=(image("a"), image("a"))), "images[1]"),
        (MessageParts(mentions=(mention(0, "Ann"), mention(0, "Bob"))), "mentions[1]"),
    ],
)
def test_duplicate_ids(parts: MessageParts, field: str) -> None:
    error = refused(parts, '<at id="0">Ann</at>')
    assert error.field == field
    assert "repeats" in error.reason


@pytest.mark.parametrize(
    ("parts", "field", "most"),
    [
        (MessageParts(cards=tuple(card(f"c{n}") for n in range(MAX_CARDS + 1))), "cards", 10),
        (MessageParts(images=tuple(image(f"i{n}") for n in range(MAX_IMAGES + 1))), "images", 10),
        (
            MessageParts(mentions=tuple(mention(n, "Ann") for n in range(MAX_MENTIONS + 1))),
            "mentions",
            100,
        ),
    ],
)
def test_too_many(parts: MessageParts, field: str, most: int) -> None:
    error = refused(parts, "<p>hi</p>")
    assert error.field == field
    assert error.reason == f"must be at most {most}"


def test_as_many_as_allowed() -> None:
    cards = tuple(card(f"c{n}") for n in range(MAX_CARDS))
    images = tuple(image(f"i{n}") for n in range(MAX_IMAGES))
    mentions = tuple(mention(n, f"U{n}") for n in range(MAX_MENTIONS))
    content = "".join(f'<img src="image:i{n}">' for n in range(MAX_IMAGES))
    content += "".join(f'<at id="{n}">U{n}</at>' for n in range(MAX_MENTIONS))
    parts = MessageParts(cards=cards, images=images, mentions=mentions)
    parts.check(content, True)
    accepted = graph(parts.chat_message(content, True, TEAM, CHANNEL))
    assert (len(accepted.attachments), len(accepted.hosted_contents)) == (10, 10)
    assert len(accepted.mentions) == 100


@pytest.mark.parametrize(
    ("parts", "content"),
    [
        (MessageParts(cards=(card(),)), "hi"),
        (MessageParts(images=(image(),)), '<img src="image:logo">'),
        (MessageParts(mentions=(mention(0, "Ann"),)), '<at id="0">Ann</at>'),
    ],
)
def test_text_body_with_cards_images_or_mentions(parts: MessageParts, content: str) -> None:
    error = refused(parts, content, html=False)
    assert error.field == "content_type"
    assert "must be 'html'" in error.reason
    parts.check(content, True)
    with pytest.raises(GraphError, match='must be "html"'):  # as Graph answers
        graph(parts.chat_message(content, False, TEAM, CHANNEL))


def test_text_body_with_subject_and_importance_only() -> None:
    parts = MessageParts(subject="News", importance=Importance.HIGH)
    parts.check("plain text", False)
    accepted = graph(parts.chat_message("plain text", False, TEAM, CHANNEL))
    assert (accepted.content_type, accepted.subject, accepted.importance) == (0, "News", "high")


def test_body_placing_a_card_not_given() -> None:
    error = refused(MessageParts(cards=(card("c1"),)), '<attachment id="c2"></attachment>')
    assert error.field == "content"
    assert "c2" in str(error.value)


@pytest.mark.parametrize(
    ("parts", "content", "field"),
    [
        (MessageParts(images=(image("logo"),)), '<img src="image:chart">', "content"),
        (
            MessageParts(cards=(card(url="image:chart"),), images=(image("logo"),)),
            '<img src="image:logo">',
            "cards[0].content",
        ),
    ],
)
def test_reference_to_an_image_not_given(parts: MessageParts, content: str, field: str) -> None:
    error = refused(parts, content)
    assert error.field == field
    assert error.value == "image:chart"


def test_mention_the_body_does_not_reference() -> None:
    parts = MessageParts(mentions=(mention(0, "Ann"), mention(1, "Bob")))
    error = refused(parts, '<p><at id="0">Ann</at></p>')
    assert error.field == "mentions[1]"
    assert '<at id="1">Bob</at>' in error.reason


def test_body_at_naming_no_mention() -> None:
    error = refused(
        MessageParts(mentions=(mention(0, "Ann"),)), '<at id="0">Ann</at><at id=7>X</at>'
    )
    assert error.field == "content"
    assert error.value == '<at id="7">'


def test_mention_text_differing_from_the_body() -> None:
    error = refused(MessageParts(mentions=(mention(0, "Ann"),)), '<at id="0">Anne</at>')
    assert error.field == "mentions[0].text"
    assert "'Anne'" in error.reason


def _filler(size: int) -> str:
    return "a" * size


def test_text_over_28_kb_counts_body_subject_cards_and_mention_texts() -> None:
    the_card = card("c1")
    place = '<attachment id="c1"></attachment><at id="0">Ann</at>'
    others = len("News") + len(the_card.content) + len("Ann")
    parts = MessageParts(subject="News", cards=(the_card,), mentions=(mention(0, "Ann"),))
    at_limit = place + _filler(MAX_CONTENT_BYTES - others - len(place))
    parts.check(at_limit, True)
    graph(parts.chat_message(at_limit, True, TEAM, CHANNEL))  # Graph takes it too
    error = refused(parts, at_limit + "a")
    assert error.field == "message"
    assert error.value == f"<{MAX_CONTENT_BYTES + 1} bytes of text>"
    with pytest.raises(GraphError) as caught:
        graph(parts.chat_message(at_limit + "a", True, TEAM, CHANNEL))
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("parts", "prefix", "extra"),
    [
        (MessageParts(subject="S"), "", 1),
        (
            MessageParts(cards=(Card("c1", '{"type":"AdaptiveCard"}'),)),
            '<attachment id="c1"></attachment>',
            23,
        ),
        (MessageParts(mentions=(mention(0, "A"),)), '<at id="0">A</at>', 1),
    ],
)
def test_each_part_counts_toward_the_28_kb(parts: MessageParts, prefix: str, extra: int) -> None:
    room = MAX_CONTENT_BYTES - extra - len(prefix)
    body = prefix + "é" * (room // 2) + "a" * (room % 2)  # UTF-8 bytes, not characters
    parts.check(body, True)
    assert refused(parts, body + "a").field == "message"


def test_request_over_4_mib_with_images() -> None:
    big = PNG + bytes(MAX_IMAGE_BYTES - len(PNG))  # 4 MiB once base64
    parts = MessageParts(images=(image("big", big),))
    error = refused(parts, '<img src="image:big">')
    assert error.field == "message"
    assert "4 MiB" in error.reason
    half = MessageParts(images=(image("a", big[: 1024 * 1024]), image("b", big[: 1024 * 1024])))
    half.check('<img src="image:a"><img src="image:b">', True)


# --- what Graph accepts: threadcast's check passing must mean Graph takes the request ---------


def test_unreferenced_image_is_refused_as_graph_refuses_it() -> None:
    parts = MessageParts(images=(image("logo"),))
    with pytest.raises(GraphError, match=r"hostedContents\[0\].*is not referenced"):
        graph(parts.chat_message("<p>hi</p>", True, TEAM, CHANNEL))
    error = refused(parts, "<p>hi</p>")
    assert error.field == "images[0]"


def test_mention_text_with_spaces_around_is_refused_as_graph_refuses_it() -> None:
    parts = MessageParts(mentions=(mention(0, "General", "channel"),))
    content = '<at id="0"> General </at>'
    with pytest.raises(GraphError, match=r"mentions\[0\]\.mentionText"):
        graph(parts.chat_message(content, True, TEAM, CHANNEL))
    assert refused(parts, content).field == "mentions[0].text"


def test_body_attachment_tag_with_text_naming_no_card() -> None:
    parts = MessageParts(cards=(card("c1"),))
    content = '<p>x</p><attachment id="nope">see the card</attachment>'
    with pytest.raises(GraphError, match='refers to <attachment id="nope">'):
        graph(parts.chat_message(content, True, TEAM, CHANNEL))
    assert refused(parts, content).field == "content"


def test_text_size_counts_the_attachment_tags_threadcast_appends() -> None:
    the_card = card("c1")
    parts = MessageParts(cards=(the_card,))  # not placed: chat_message appends its tag
    content = _filler(MAX_CONTENT_BYTES - len(the_card.content))
    with pytest.raises(GraphError) as caught:
        graph(parts.chat_message(content, True, TEAM, CHANNEL))
    assert caught.value.status == 413
    assert refused(parts, content).field == "message"


def test_text_size_counts_image_references_as_sent() -> None:
    parts = MessageParts(images=(image("x"),))
    placed = '<img src="image:x">'  # sent as ../hostedContents/1/$value: 19 bytes longer
    content = placed + _filler(MAX_CONTENT_BYTES - len(placed))
    with pytest.raises(GraphError) as caught:
        graph(parts.chat_message(content, True, TEAM, CHANNEL))
    assert caught.value.status == 413
    assert refused(parts, content).field == "message"


def _images_filling(content: str, chars: int, mentions: tuple[Mention, ...] = ()) -> MessageParts:
    """``mentions`` and two images making the request ``chars`` characters long as threadcast
    measures it (``json.dumps(..., ensure_ascii=False)`` of the message for team "t" and
    channel "c"): each 3 more bytes of an image add 4 base64 characters."""
    small = MessageParts(images=(image("a", PNG), image("b", PNG)), mentions=mentions)
    measured = len(json.dumps(small.chat_message(content, True, "t", "c"), ensure_ascii=False))
    grow = (chars - measured) // 8 * 3
    images = (image("a", PNG + bytes(grow)), image("b", PNG + bytes(grow)))
    return MessageParts(images=images, mentions=mentions)


def test_request_size_is_counted_in_bytes_as_sent() -> None:
    content = "<p>" + "漢" * 9000 + '</p><img src="image:a"><img src="image:b">'
    parts = _images_filling(content, MAX_REQUEST_BYTES - 100)
    sent = wire(parts.chat_message(content, True, TEAM, CHANNEL))
    assert len(sent) > MAX_REQUEST_BYTES  # Graph answers 413
    assert refused(parts, content).field == "message"


def test_request_size_counts_the_real_team_and_channel_of_mentions() -> None:
    mentions = tuple(mention(n, "General", "channel") for n in range(MAX_MENTIONS))
    content = "".join(f'<at id="{n}">General</at>' for n in range(MAX_MENTIONS))
    content += '<img src="image:a"><img src="image:b">'
    parts = _images_filling(content, MAX_REQUEST_BYTES - 100, mentions)
    sent = wire(parts.chat_message(content, True, TEAM, CHANNEL))
    assert len(sent) > MAX_REQUEST_BYTES  # Graph answers 413
    assert refused(parts, content).field == "message"


# --- chat_message ------------------------------------------------------------------------------


def _full() -> tuple[MessageParts, str]:
    parts = MessageParts(
        subject="Office move",
        importance=Importance.URGENT,
        cards=(
            card("c1", body=[{"type": "Image", "url": "image:chart"}]),
            card("c2", body=[{"type": "TextBlock", "text": "unplaced"}]),
        ),
        images=(image("logo", PNG), image("chart", GIF)),
        mentions=(
            mention(0, "Ann"),
            mention(1, "General", "channel"),
            mention(2, "Engineering", "team"),
        ),
    )
    content = (
        '<p><at id="0">Ann</at>, <at id="1">General</at> and <at id="2">Engineering</at>:</p>'
        '<img src="image:logo"><attachment id="c1"></attachment>'
    )
    return parts, content


def test_chat_message_whole() -> None:
    parts, content = _full()
    parts.check(content, True)
    message = parts.chat_message(content, True, TEAM, CHANNEL)
    assert message["body"] == {
        "contentType": "html",
        "content": (
            '<p><at id="0">Ann</at>, <at id="1">General</at> and <at id="2">Engineering</at>:</p>'
            '<img src="../hostedContents/1/$value"><attachment id="c1"></attachment>'
            '<attachment id="c2"></attachment>'
        ),
    }
    assert message["subject"] == "Office move"
    assert message["importance"] == "urgent"
    assert [a["id"] for a in message["attachments"]] == ["c1", "c2"]
    assert {a["contentType"] for a in message["attachments"]} == {CARD_TYPE}
    first = json.loads(message["attachments"][0]["content"])
    assert first["body"][0]["url"] == "../hostedContents/2/$value"
    assert message["hostedContents"] == [
        {
            "@microsoft.graph.temporaryId": "1",
            "contentBytes": base64.b64encode(PNG).decode(),
            "contentType": "image/png",
        },
        {
            "@microsoft.graph.temporaryId": "2",
            "contentBytes": base64.b64encode(GIF).decode(),
            "contentType": "image/gif",
        },
    ]
    assert message["mentions"][0] == {
        "id": 0,
        "mentionText": "Ann",
        "mentioned": {"user": {"id": USER, "displayName": "Ann", "userIdentityType": "aadUser"}},
    }
    accepted = graph(message)
    assert (accepted.subject, accepted.importance) == ("Office move", "urgent")
    assert [h.temporary_id for h in accepted.hosted_contents] == ["1", "2"]


def test_channel_and_team_mentions_name_the_delivery_s_own() -> None:
    parts, content = _full()
    message = parts.chat_message(content, True, TEAM, CHANNEL)
    conversations = [m["mentioned"]["conversation"] for m in message["mentions"][1:]]
    assert conversations == [
        {"id": CHANNEL, "displayName": "General", "conversationIdentityType": "channel"},
        {"id": TEAM, "displayName": "Engineering", "conversationIdentityType": "team"},
    ]
    other = "19:fedcba9876543210fedcba9876543210@thread.tacv2"
    graph(parts.chat_message(content, True, TEAM, other), TEAM, other)
    with pytest.raises(GraphError, match="not the channel the message is posted to"):
        graph(message, TEAM, other)


def test_placed_cards_are_not_appended_again() -> None:
    parts = MessageParts(cards=(card("c1"), card("c2")))
    content = '<attachment id="c2"></attachment><p>then</p><attachment id="c1"></attachment>'
    assert parts.chat_message(content, True, TEAM, CHANNEL)["body"]["content"] == content
    appended = parts.chat_message("<p>x</p>", True, TEAM, CHANNEL)["body"]["content"]
    assert appended == '<p>x</p><attachment id="c1"></attachment><attachment id="c2"></attachment>'
    graph(parts.chat_message("<p>x</p>", True, TEAM, CHANNEL))


def test_normal_importance_and_no_subject_are_omitted() -> None:
    assert MessageParts().chat_message("hi", False, TEAM, CHANNEL) == {
        "body": {"contentType": "text", "content": "hi"}
    }
    message = MessageParts(subject="S", importance=Importance.NORMAL).chat_message(
        "<b>hi</b>", True, TEAM, CHANNEL
    )
    assert message == {"body": {"contentType": "html", "content": "<b>hi</b>"}, "subject": "S"}
    graph(message)


def test_every_image_reference_is_rewritten() -> None:
    parts = MessageParts(images=(image("a"), image("b.png")))
    content = '<img src="image:b.png"><img src="image:a"><img src="image:b.png">'
    body = parts.chat_message(content, True, TEAM, CHANNEL)["body"]["content"]
    assert body == (
        '<img src="../hostedContents/2/$value"><img src="../hostedContents/1/$value">'
        '<img src="../hostedContents/2/$value">'
    )
    assert "image:" not in body


# --- stored form and status ----------------------------------------------------------------------


def test_round_trip() -> None:
    parts, _ = _full()
    stored = parts.to_json()
    assert stored is not None
    assert MessageParts.from_json(stored) == parts
    data = json.loads(stored)
    assert data["images"][1] == {
        "name": "chart",
        "type": "image/gif",
        "data": base64.b64encode(GIF).decode(),
    }
    only = MessageParts(importance=Importance.HIGH)
    assert MessageParts.from_json(only.to_json()) == only


def test_body_only_is_stored_as_none() -> None:
    assert MessageParts().beyond_body is False
    assert MessageParts().to_json() is None
    assert MessageParts(importance=Importance.NORMAL).to_json() is None
    assert MessageParts.from_json(None) == MessageParts()
    assert MessageParts.from_json("") == MessageParts()
    assert MessageParts(subject="S").beyond_body is True


def test_describe() -> None:
    assert MessageParts().describe() == "a body only"
    parts, _ = _full()
    assert parts.describe() == "a subject, importance urgent, 2 cards, 2 images, 3 mentions"
    one = MessageParts(cards=(card(),), images=(image(),), mentions=(mention(0, "A"),))
    assert one.describe() == "1 card, 1 image, 1 mention"
    assert MessageParts(importance=Importance.HIGH).describe() == "importance high"


def test_escaped_mention_text_is_the_mention_s_text_as_graph_reads_it() -> None:
    parts = MessageParts(mentions=(mention(0, "R&D"),))
    content = '<at id="0">R&amp;D</at>'
    parts.check(content, True)
    graph(parts.chat_message(content, True, TEAM, CHANNEL))


def test_only_an_image_s_place_is_rewritten() -> None:
    parts = MessageParts(images=(image(),))
    content = '<p>image:logo stays text</p><img src="image:logo">'
    body = parts.chat_message(content, True, TEAM, CHANNEL)["body"]["content"]
    assert body == '<p>image:logo stays text</p><img src="../hostedContents/1/$value">'


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: MessageParts(subject="a\ud800").check("<p>x</p>", True), "subject"),
        (
            lambda: Card.parse("cards[0]", "c1", '{"type": "AdaptiveCard", "x": "\ud800"}'),
            "cards[0].content",
        ),
        (
            lambda: Mention.parse("mentions[0]", {"id": 0, "text": "a\ud800", "kind": "team"}),
            "mentions[0].text",
        ),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_part(make: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert caught.value.field == field and "lone surrogate" in caught.value.reason
