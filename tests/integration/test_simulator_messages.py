"""v1.0 channel messages with every part (subject, importance, cards, images, mentions), their
edits and soft deletes, every version recorded: a real simulator over HTTPS, real MSAL, httpx.

One simulator (``--test-clock``; message parts are on by default) serves the module; each
test starts from a reset with the default settings and posts to teams of its own.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import simulator.process
from simulator.knobs import Knobs
from simulator.process import RunningSimulator
from simulator.v1knobs import V1Knobs
from tests.integration import test_simulator_limits as limits_module
from tests.integration.test_simulator import move_clock, msal_app, new_tenant
from tests.integration.test_simulator_graph_today import graph_error

CHANNEL_ID = "19:abc@thread.tacv2"
ALL_SCOPES = [
    "ChannelMessage.Send",
    "ChannelMessage.ReadWrite",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
CARD = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "Hi"}]}
USER_ID = "ef1c916a-3135-4417-ba27-8eb7bd084193"


# One simulator per module (test clock) and an HTTPS client, as the limits module has them.
sim = limits_module.sim
http = limits_module.http


@pytest.fixture(scope="module")
def signed_in(sim: RunningSimulator, http: httpx.Client) -> tuple[str, str]:
    tenant = new_tenant()
    return tenant, token_for(sim, http, tenant, ALL_SCOPES)


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator, http: httpx.Client) -> None:
    move_clock(sim, http, offset=0)
    admin(sim, http, "/config", Knobs().to_json())
    admin(sim, http, "/config/v1", V1Knobs().to_json())
    http.post(f"{sim.admin_url}/reset").raise_for_status()


def token_for(sim: RunningSimulator, http: httpx.Client, tenant: str, scopes: list[str]) -> str:
    app = msal_app(sim, http, tenant)
    result = app.acquire_token_by_device_flow(app.initiate_device_flow(scopes=scopes))
    assert "access_token" in result, result
    return str(result["access_token"])


def admin(sim: RunningSimulator, http: httpx.Client, path: str, body: object) -> dict[str, Any]:
    return dict(http.post(f"{sim.admin_url}{path}", json=body).raise_for_status().json())


def admin_get(sim: RunningSimulator, http: httpx.Client, path: str) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}{path}").raise_for_status().json())


def messages_url(sim: RunningSimulator, team: str, channel: str = CHANNEL_ID) -> str:
    return f"{sim.graph_url}/v1.0/teams/{team}/channels/{quote(channel, safe='')}/messages"


def headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def post(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    team: str,
    message: object,
    channel: str = CHANNEL_ID,
) -> httpx.Response:
    body = json.dumps(message).encode()
    return http.post(messages_url(sim, team, channel), content=body, headers=headers(token))


def patch(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    team: str,
    message_id: str,
    change: object,
    channel: str = CHANNEL_ID,
) -> httpx.Response:
    url = f"{messages_url(sim, team, channel)}/{message_id}"
    return http.patch(url, content=json.dumps(change).encode(), headers=headers(token))


def soft_delete(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    team: str,
    message_id: str,
    channel: str = CHANNEL_ID,
) -> httpx.Response:
    url = f"{messages_url(sim, team, channel)}/{message_id}/softDelete"
    return http.post(url, headers={"authorization": f"Bearer {token}"})


def html(content: str) -> dict[str, str]:
    return {"contentType": "html", "content": content}


def card(card_id: str = "card1", content: object = None) -> dict[str, object]:
    return {
        "id": card_id,
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": json.dumps(CARD) if content is None else content,
    }


def image(temporary_id: str = "1", data: bytes = PNG, kind: str = "image/png") -> dict[str, str]:
    return {
        "@microsoft.graph.temporaryId": temporary_id,
        "contentBytes": base64.b64encode(data).decode(),
        "contentType": kind,
    }


def user_mention(number: int = 0, text: str = "Jane Smith") -> dict[str, object]:
    user = {"id": USER_ID, "displayName": text, "userIdentityType": "aadUser"}
    return {"id": number, "mentionText": text, "mentioned": {"user": user}}


def conversation_mention(number: int, text: str, kind: str, conversation_id: str) -> dict[str, Any]:
    conversation = {"id": conversation_id, "displayName": text, "conversationIdentityType": kind}
    return {"id": number, "mentionText": text, "mentioned": {"conversation": conversation}}


ANNOUNCEMENT = (
    '<p>Hello <at id="0">Jane Smith</at>, <at id="1">General</at> and <at id="2">Sales</at>'
    '</p><img src="../hostedContents/1/$value" width="40"><attachment id="card1"></attachment>'
)


def full_message(team: str, channel: str = CHANNEL_ID) -> dict[str, object]:
    """A card with an image, a subject, urgent importance, mentions of a user, the channel
    and the team: what an announcement is made of."""
    with_image = {**CARD, "body": [{"type": "Image", "url": "../hostedContents/2/$value"}]}
    return {
        "subject": "Office closed Friday",
        "importance": "urgent",
        "body": html(ANNOUNCEMENT),
        "attachments": [card(content=json.dumps(with_image))],
        "hostedContents": [image("1"), image("2", JPEG, "image/jpeg")],
        "mentions": [
            user_mention(),
            conversation_mention(1, "General", "channel", channel),
            conversation_mention(2, "Sales", "team", team),
        ],
    }


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def message_record(sim: RunningSimulator, http: httpx.Client, message_id: str) -> dict[str, Any]:
    return admin_get(sim, http, f"/messages/{message_id}")


# --- creating a message with every part ------------------------------------------------------


def test_a_card_with_images_subject_importance_and_mentions_is_created_and_echoed(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    team = str(uuid.uuid4())
    answer = created(post(sim, http, token, team, full_message(team)))
    message_id = answer["id"]
    assert (answer["subject"], answer["importance"]) == ("Office closed Friday", "urgent")
    base = f"{sim.graph_url}/v1.0/teams/{team}/channels/{CHANNEL_ID}/messages/{message_id}"
    body = answer["body"]["content"]
    assert f'<img src="{base}/hostedContents/' in body and "../hostedContents" not in body
    [attachment] = answer["attachments"]
    assert attachment["id"] == "card1"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert (attachment["contentUrl"], attachment["name"]) == (None, None)
    card_json = json.loads(attachment["content"])
    assert card_json["body"][0]["url"].startswith(f"{base}/hostedContents/")
    mentions = answer["mentions"]
    assert [m["mentionText"] for m in mentions] == ["Jane Smith", "General", "Sales"]
    assert mentions[0]["mentioned"] == {
        "application": None,
        "device": None,
        "conversation": None,
        "user": {"id": USER_ID, "displayName": "Jane Smith", "userIdentityType": "aadUser"},
    }
    assert mentions[2]["mentioned"]["conversation"] == {
        "id": team,
        "displayName": "Sales",
        "conversationIdentityType": "team",
    }

    record = message_record(sim, http, message_id)
    assert (record["tenant"], record["team"], record["channel"]) == (tenant, team, CHANNEL_ID)
    assert (record["history"], record["deleted_at"]) == ("created", None)
    [version] = record["versions"]
    assert (version["version"], version["kind"]) == (1, "created")
    assert uuid.UUID(version["request_id"])
    assert version["hostedContents"] == [
        {"temporaryId": "1", "contentType": "image/png", "bytes": len(PNG)},
        {"temporaryId": "2", "contentType": "image/jpeg", "bytes": len(JPEG)},
    ]
    assert version["body"] == {"contentType": "html", "content": ANNOUNCEMENT}
    [logged] = admin_get(sim, http, "/posts")["posts"]
    assert (logged["endpoint"], logged["message_id"]) == ("channel-messages", message_id)


def test_a_plain_message_still_answers_as_before(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    answer = created(post(sim, http, signed_in[1], str(uuid.uuid4()), {"body": html("<b>x</b>")}))
    assert (answer["subject"], answer["importance"]) == (None, "normal")
    assert (answer["attachments"], answer["mentions"]) == ([], [])
    assert answer["body"] == {"contentType": "html", "content": "<b>x</b>"}


# --- bad input: every part, named --------------------------------------------------------------


def _with(**parts: object) -> dict[str, object]:
    return {"body": html('<attachment id="card1"></attachment>'), "attachments": [card()], **parts}


BAD_MESSAGES: list[tuple[dict[str, object], str]] = [
    ({"body": html("x"), "summary": "s"}, "The property 'summary' does not exist"),
    ({"body": html("x"), "subject": 5}, "subject must be a string or null"),
    ({"body": html("x"), "importance": "critical"}, 'importance must be "normal", "high"'),
    ({"body": html("x"), "importance": None}, "importance must be"),
    ({"subject": "s"}, "Required property 'body' is missing"),
    (_with(attachments={"id": "card1"}), "attachments must be a JSON array"),
    (_with(attachments=[{"id": "card1"}]), "'attachments[0].contentType' is missing"),
    (_with(attachments=[{**card(), "colour": 1}]), "'colour' does not exist on type"),
    (_with(attachments=[card(content=CARD)]), "attachments[0].content must be the card's JSON"),
    (_with(attachments=[card(content="{not json")]), "attachments[0].content is not valid JSON"),
    (_with(attachments=[card(content="[]")]), "attachments[0].content must be a JSON object"),
    (
        _with(attachments=[card(content=json.dumps({"type": "HeroCard"}))]),
        'attachments[0].content must be an Adaptive Card: its "type" must be "AdaptiveCard"',
    ),
    (
        _with(attachments=[{**card(), "contentType": "image/png"}]),
        "attachments[0].contentType 'image/png' is not supported",
    ),
    (_with(attachments=[card(), card()]), 'attachments[1].id "card1" is used twice'),
    (_with(attachments=[card("")]), "attachments[0].id must not be empty"),
    ({"body": html("no tag"), "attachments": [card()]}, "attachments[0] (id 'card1') is not"),
    (_with(body=html('<attachment id="nope"></attachment>')), '<attachment id="nope">'),
    (
        _with(body={"contentType": "text", "content": '<attachment id="card1"></attachment>'}),
        'body.contentType must be "html"',
    ),
    (
        _with(attachments=[{"id": "card1", "contentType": "reference", "contentUrl": "ftp://x"}]),
        "attachments[0].contentUrl must be the https:// URL",
    ),
    (
        {"body": html('<img src="../hostedContents/1/$value">'), "hostedContents": [image()][0]},
        "hostedContents must be a JSON array",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [image(kind="image/bmp")],
        },
        "hostedContents[0].contentType must be one of image/png, image/jpeg, image/gif",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [{**image(), "contentBytes": "not base64!"}],
        },
        "hostedContents[0].contentBytes is not valid base64",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [image(data=JPEG)],
        },
        "hostedContents[0].contentBytes is not a PNG image",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [image(data=PNG, kind="image/gif")],
        },
        "hostedContents[0].contentBytes is not a GIF image",
    ),
    (
        {"body": html("<p>no image</p>"), "hostedContents": [image()]},
        "hostedContents[0] (@microsoft.graph.temporaryId '1') is not referenced",
    ),
    (
        {"body": html('<img src="../hostedContents/2/$value">'), "hostedContents": [image()]},
        "body.content refers to ../hostedContents/2/$value",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [{"contentBytes": "iVBO", "contentType": "image/png"}],
        },
        "Required property 'hostedContents[0].@microsoft.graph.temporaryId' is missing",
    ),
    (
        {
            "body": html('<img src="../hostedContents/1/$value">'),
            "hostedContents": [image(), image()],
        },
        'hostedContents[1].@microsoft.graph.temporaryId "1" is used twice',
    ),
    (
        {"body": html('<at id="0">Jane Smith</at>'), "mentions": [{**user_mention(), "id": "0"}]},
        "mentions[0].id must be a non-negative integer",
    ),
    (
        {"body": html('<at id="0">Jane Smith</at>'), "mentions": [{**user_mention(), "id": True}]},
        "mentions[0].id must be a non-negative integer",
    ),
    ({"body": html("hello"), "mentions": [user_mention()]}, "mentions[0] (id 0) is not referenced"),
    (
        {"body": html('<at id="5">Jane Smith</at>'), "mentions": [user_mention()]},
        'body.content has <at id="5">, but mentions has no mention with id 5',
    ),
    (
        {"body": html('<at id="0">Jane</at>'), "mentions": [user_mention()]},
        'mentions[0].mentionText "Jane Smith" differs from the text of <at id="0">',
    ),
    (
        {
            "body": html('<at id="0">Jane Smith</at><at id="0">Jane Smith</at>'),
            "mentions": [user_mention(), user_mention()],
        },
        "mentions[1].id 0 is used twice",
    ),
    (
        {
            "body": html('<at id="0">x</at>'),
            "mentions": [{**user_mention(text="x"), "mentionText": ""}],
        },
        "mentions[0].mentionText must not be empty",
    ),
    (
        {
            "body": html('<at id="0">Bot</at>'),
            "mentions": [
                {"id": 0, "mentionText": "Bot", "mentioned": {"application": {"id": "a"}}}
            ],
        },
        "mentions[0].mentioned must name exactly one of 'user'",
    ),
    (
        {
            "body": html('<at id="0">Jane Smith</at>'),
            "mentions": [
                {
                    **user_mention(),
                    "mentioned": {
                        "user": {"id": USER_ID},
                        "conversation": {"id": "x", "displayName": "x"},
                    },
                }
            ],
        },
        "mentions[0].mentioned must name exactly one of 'user'",
    ),
    (
        {
            "body": html('<at id="0">Jane Smith</at>'),
            "mentions": [{**user_mention(), "mentioned": {}}],
        },
        "mentions[0].mentioned must name exactly one of 'user'",
    ),
    (
        {
            "body": html('<at id="0">Jane Smith</at>'),
            "mentions": [
                {
                    **user_mention(),
                    "mentioned": {"user": {"id": USER_ID, "userIdentityType": "phoneUser"}},
                }
            ],
        },
        'mentions[0].mentioned.user.userIdentityType must be "aadUser"',
    ),
    (
        {
            "body": html('<at id="0">Sales</at>'),
            "mentions": [conversation_mention(0, "Sales", "team", str(uuid.uuid4()))],
        },
        "mentions[0].mentioned.conversation.id",
    ),
    (
        {
            "body": html('<at id="0">Other</at>'),
            "mentions": [conversation_mention(0, "Other", "channel", "19:other@thread.tacv2")],
        },
        "is not the channel the message is posted to",
    ),
    (
        {
            "body": html('<at id="0">Chat</at>'),
            "mentions": [conversation_mention(0, "Chat", "chat", CHANNEL_ID)],
        },
        'mentions[0].mentioned.conversation.conversationIdentityType must be "channel" or "team"',
    ),
]


@pytest.mark.parametrize(("message", "names"), BAD_MESSAGES)
def test_a_bad_part_is_400_naming_it_and_nothing_is_recorded(
    sim: RunningSimulator,
    http: httpx.Client,
    signed_in: tuple[str, str],
    message: dict[str, object],
    names: str,
) -> None:
    response = post(sim, http, signed_in[1], str(uuid.uuid4()), message)
    assert names in graph_error(response, 400, "BadRequest")
    assert admin_get(sim, http, "/messages")["total"] == 0
    assert admin_get(sim, http, "/stats")["accepted"] == 0


def test_a_message_over_28_kb_of_text_is_413_and_images_count_separately(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    limit = 28 * 1024
    assert post(sim, http, token, team, {"body": html("x" * limit)}).status_code == 201
    over = post(sim, http, token, team, {"body": html("x" * (limit - 2)), "subject": "abc"})
    message = graph_error(over, 413, "RequestEntityTooLarge")
    assert f"is {limit + 1} bytes of text" in message and "28 KB" in message
    in_card = {**card(), "content": json.dumps({**CARD, "pad": "y" * limit})}
    carded = post(sim, http, token, team, _with(attachments=[in_card]))
    graph_error(carded, 413, "RequestEntityTooLarge")
    big_image = PNG + b"\x00" * (2 * 1024 * 1024)  # 2 MiB: over 28 KB, under the 4 MB request
    pictured = {
        "body": html('<img src="../hostedContents/1/$value">'),
        "hostedContents": [image(data=big_image)],
    }
    answer = created(post(sim, http, token, team, pictured))
    record = message_record(sim, http, answer["id"])
    assert record["versions"][0]["hostedContents"][0]["bytes"] == len(big_image)
    assert admin_get(sim, http, "/messages")["total"] == 2


def test_a_request_over_4_mib_is_413(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    huge = PNG + b"\x00" * (3 * 1024 * 1024 + 1024)  # base64: over 4 MiB
    message = {
        "body": html('<img src="../hostedContents/1/$value">'),
        "hostedContents": [image(data=huge)],
    }
    response = post(sim, http, signed_in[1], str(uuid.uuid4()), message)
    assert "4194304 bytes (4 MiB)" in graph_error(response, 413, "RequestEntityTooLarge")
    assert admin_get(sim, http, "/messages")["total"] == 0


def test_with_message_parts_off_a_message_is_its_body_only(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    assert admin(sim, http, "/config/v1", {"message_parts": False})["message_parts"] is False
    refused = post(sim, http, token, team, {"body": html("x"), "subject": "s"})
    assert "'subject'" in graph_error(refused, 400, "BadRequest")
    message_id = created(post(sim, http, token, team, {"body": html("x")}))["id"]
    no_subject = patch(sim, http, token, team, message_id, {"subject": "s"})
    assert "'subject'" in graph_error(no_subject, 400, "BadRequest")
    assert patch(sim, http, token, team, message_id, {"body": html("y")}).status_code == 204
    assert message_record(sim, http, message_id)["history"] == "created>edited"


# --- edits --------------------------------------------------------------------------------------


def test_a_patch_updates_the_message_and_records_a_version(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    message_id = created(post(sim, http, token, team, full_message(team)))["id"]
    fixed_card = card(content=json.dumps({**CARD, "body": [{"type": "TextBlock", "text": "Mon"}]}))
    change = {
        "subject": "Office closed Monday",
        "importance": "high",
        "attachments": [fixed_card],
        "body": html('<p>Monday</p><attachment id="card1"></attachment>'),
        "mentions": [],
        "hostedContents": [],
    }
    response = patch(sim, http, token, team, message_id, change)
    assert response.status_code == 204, response.text
    assert response.content == b"" and uuid.UUID(response.headers["request-id"])
    record = message_record(sim, http, message_id)
    assert record["history"] == "created>edited"
    edited = record["versions"][1]
    assert (edited["version"], edited["kind"]) == (2, "edited")
    assert edited["request_id"] == response.headers["request-id"]
    assert (edited["subject"], edited["importance"]) == ("Office closed Monday", "high")
    assert json.loads(edited["attachments"][0]["content"])["body"][0]["text"] == "Mon"
    assert record["versions"][0]["subject"] == "Office closed Friday"  # the first version stays

    only_subject = patch(sim, http, token, team, message_id, {"subject": None})
    assert only_subject.status_code == 204
    third = message_record(sim, http, message_id)["versions"][2]
    assert (third["subject"], third["body"]) == (None, edited["body"])  # the rest unchanged


@pytest.mark.parametrize(
    ("change", "status", "names"),
    [
        ({}, 400, "Nothing to update: name at least one of the properties body, subject"),
        ({"summary": "x"}, 400, "The property 'summary' does not exist"),
        ({"importance": "low"}, 400, "importance must be"),
        ({"body": html("no card any more")}, 400, "attachments[0] (id 'card1') is not referenced"),
        ({"attachments": []}, 400, '<attachment id="card1">, but attachments has no'),
        ({"body": {"contentType": "html"}}, 400, "'body.content' is missing"),
        ({"body": html("x" * (28 * 1024 + 1)), "attachments": []}, 413, "28 KB"),
    ],
)
def test_a_bad_patch_is_refused_naming_the_part_and_records_nothing(
    sim: RunningSimulator,
    http: httpx.Client,
    signed_in: tuple[str, str],
    change: dict[str, object],
    status: int,
    names: str,
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    message_id = created(post(sim, http, token, team, _with()))["id"]
    response = patch(sim, http, token, team, message_id, change)
    code = "BadRequest" if status == 400 else "RequestEntityTooLarge"
    assert names in graph_error(response, status, code)
    assert message_record(sim, http, message_id)["history"] == "created"


def test_an_unknown_message_is_404_to_patch_and_soft_delete(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    message_id = created(post(sim, http, token, team, {"body": html("x")}))["id"]
    for response in (
        patch(sim, http, token, team, "1234", {"subject": "s"}),
        soft_delete(sim, http, token, team, "1234"),
        patch(sim, http, token, str(uuid.uuid4()), message_id, {"subject": "s"}),
        soft_delete(sim, http, token, team, message_id, channel="19:other@thread.tacv2"),
    ):
        assert "was not found in channel" in graph_error(response, 404, "NotFound")
    other_tenant = token_for(sim, http, new_tenant(), ALL_SCOPES)
    theirs = patch(sim, http, other_tenant, team, message_id, {"subject": "s"})
    assert f"Message '{message_id}' was not found" in graph_error(theirs, 404, "NotFound")
    assert message_record(sim, http, message_id)["history"] == "created"


def test_soft_delete_then_again_then_patch(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    message_id = created(post(sim, http, token, team, {"body": html("x")}))["id"]
    with_body = http.post(
        f"{messages_url(sim, team)}/{message_id}/softDelete", content=b"{}", headers=headers(token)
    )
    assert "softDelete takes no request body" in graph_error(with_body, 400, "BadRequest")
    deleted = soft_delete(sim, http, token, team, message_id)
    assert (deleted.status_code, deleted.content) == (204, b"")
    again = soft_delete(sim, http, token, team, message_id)
    assert again.status_code == 204  # idempotent: no new version, counted as a repeat
    refused = patch(sim, http, token, team, message_id, {"body": html("y")})
    assert graph_error(refused, 400, "BadRequest").startswith("The message was deleted")
    record = message_record(sim, http, message_id)
    assert (record["history"], record["repeated_soft_deletes"]) == ("created>soft_deleted", 1)
    assert record["deleted_at"] == record["versions"][1]["at"]
    assert admin_get(sim, http, "/stats")["messages"] == {
        "created": 1,
        "edited": 0,
        "soft_deleted": 1,
        "soft_delete_repeats": 1,
    }


def test_edits_need_their_own_permissions(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    team = str(uuid.uuid4())
    send_only = token_for(sim, http, new_tenant(), ["ChannelMessage.Send"])
    message_id = created(post(sim, http, send_only, team, {"body": html("x")}))["id"]
    refused = patch(sim, http, send_only, team, message_id, {"subject": "s"})
    assert (
        "API requires one of 'ChannelMessage.ReadWrite, Group.ReadWrite.All'. "
        "Scopes on the request 'ChannelMessage.Send'"
    ) in graph_error(refused, 403, "Forbidden")
    not_deleted = soft_delete(sim, http, send_only, team, message_id)
    assert "API requires one of 'ChannelMessage.ReadWrite'." in graph_error(
        not_deleted, 403, "Forbidden"
    )
    legacy_tenant = new_tenant()
    legacy = token_for(sim, http, legacy_tenant, ["Group.ReadWrite.All"])
    legacy_id = created(post(sim, http, legacy, team, {"body": html("x")}))["id"]
    assert patch(sim, http, legacy, team, legacy_id, {"subject": "s"}).status_code == 204
    graph_error(soft_delete(sim, http, legacy, team, legacy_id), 403, "Forbidden")


def test_edits_are_throttled_apart_from_posts_and_share_the_team_limit(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    team = str(uuid.uuid4())
    ids = [created(post(sim, http, token, team, {"body": html(f"m{n}")}))["id"] for n in range(3)]
    config = admin(sim, http, "/config/v1", {"edit_tenant_rps": 2})
    assert config["edit_tenant_rps"] == 2
    assert patch(sim, http, token, team, ids[0], {"subject": "a"}).status_code == 204
    assert soft_delete(sim, http, token, team, ids[1]).status_code == 204
    throttled = patch(sim, http, token, team, ids[2], {"subject": "c"})
    assert "message edits (PATCH, softDelete) per second in tenant" in graph_error(
        throttled, 429, "TooManyRequests"
    )
    retry_after = int(throttled.headers["Retry-After"])
    assert post(sim, http, token, team, {"body": html("still")}).status_code == 201
    move_clock(sim, http, advance=retry_after)
    assert patch(sim, http, token, team, ids[2], {"subject": "c"}).status_code == 204
    report = admin_get(sim, http, "/throttle")
    assert report["operation_limits"]["edit_tenant_rps"] == 2
    assert report["scopes"][f"edit_tenant:{tenant}"]["throttled"] == 1
    assert report["scopes"][f"edit_tenant:{tenant}"]["max_window"] == 2
    assert message_record(sim, http, ids[2])["history"] == "created>edited"

    admin(sim, http, "/config/v1", {"edit_tenant_rps": 0})
    admin(sim, http, "/config", {"team_rps": 1})
    move_clock(sim, http, advance=2)
    other = str(uuid.uuid4())
    fresh_id = created(post(sim, http, token, other, {"body": html("t")}))["id"]
    shared = patch(sim, http, token, other, fresh_id, {"subject": "s"})
    assert "requests per second on team" in graph_error(shared, 429, "TooManyRequests")


def test_throttle_defaults_set_the_documented_edit_and_read_limits(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    limits = admin(sim, http, "/config/v1", {"throttle_defaults": True, "channels_tenant_rps": 7})
    assert {name: limits[name] for name in limits if name.endswith("_rps")} == {
        "edit_app_rps": 300,
        "edit_tenant_rps": 30,
        "joined_teams_app_rps": 300,
        "joined_teams_tenant_rps": 30,
        "channels_app_rps": 1200,
        "channels_tenant_rps": 7,
    }


def test_edits_draw_faults_and_a_faulted_edit_is_not_recorded(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    message_id = created(post(sim, http, token, team, {"body": html("x")}))["id"]
    admin(sim, http, "/config", {"fault_503": 1.0})
    graph_error(
        patch(sim, http, token, team, message_id, {"subject": "s"}), 503, "ServiceUnavailable"
    )
    graph_error(soft_delete(sim, http, token, team, message_id), 503, "ServiceUnavailable")
    assert message_record(sim, http, message_id)["history"] == "created"


# --- what a rehearsal asserts -------------------------------------------------------------------


def test_created_once_edited_once_deleted_once_nothing_else(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token, team = signed_in[1], str(uuid.uuid4())
    channels = [f"19:{n:032x}@thread.tacv2" for n in range(5)]
    ids = [created(post(sim, http, token, team, full_message(team, c), c))["id"] for c in channels]
    for message_id, channel in zip(ids, channels, strict=True):
        change = {"subject": "Edited"}
        assert patch(sim, http, token, team, message_id, change, channel).status_code == 204
    for message_id, channel in zip(ids, channels, strict=True):
        assert soft_delete(sim, http, token, team, message_id, channel).status_code == 204
    page = admin_get(sim, http, "/messages?limit=2&offset=1")
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert [m["message_id"] for m in page["messages"]] == ids[1:3]
    assert page["summary"] == {
        "messages": 5,
        "versions": {"created": 5, "edited": 5, "soft_deleted": 5},
        "soft_delete_repeats": 0,
        "histories": {"created>edited>soft_deleted": 5},
    }
    assert admin_get(sim, http, "/stats")["messages"] == {
        "created": 5,
        "edited": 5,
        "soft_deleted": 5,
        "soft_delete_repeats": 0,
    }
    http.post(f"{sim.admin_url}/reset").raise_for_status()
    assert "messages" not in admin_get(sim, http, "/stats")
    assert admin_get(sim, http, "/messages")["summary"]["messages"] == 0
    assert http.get(f"{sim.admin_url}/messages/{ids[0]}").status_code == 404
    assert http.get(f"{sim.admin_url}/messages", params={"limit": "x"}).status_code == 400


# --- the v1 settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"message_parts": 1}, "'message_parts' must be true or false"),
        ({"edit_app_rps": -1}, "'edit_app_rps' must be a non-negative integer"),
        ({"channels_per_team": 0}, "'channels_per_team' must be an integer from 1 to 200"),
        ({"channels_per_team": 201}, "'channels_per_team' must be an integer from 1 to 200"),
        ({"page_size": 0}, "'page_size' must be an integer from 1 to 999"),
        ({"teams_per_tenant": 1.5}, "'teams_per_tenant' must be a non-negative integer"),
        ({"throttle_defaults": "yes"}, "'throttle_defaults' must be true or false"),
        ({"team_rps": 1}, "unknown setting 'team_rps'"),
    ],
)
def test_bad_v1_settings_are_refused_by_name_and_change_nothing(
    sim: RunningSimulator, http: httpx.Client, change: dict[str, object], message: str
) -> None:
    before = admin_get(sim, http, "/config/v1")
    response = http.post(f"{sim.admin_url}/config/v1", json={"page_size": 5, **change})
    assert response.status_code == 400 and message in response.json()["error"]
    assert admin_get(sim, http, "/config/v1") == before
    assert http.post(f"{sim.admin_url}/config/v1", content=b"[]").status_code == 400


def test_the_v1_flags_set_the_same_settings_from_the_start(tmp_path: Path) -> None:
    flags = ["--throttle-defaults", "--edit-tenant-rps", "3", "--teams-per-tenant", "4"]
    with (
        simulator.process.start(tmp_path, device_approve_delay=0, extra_args=flags) as sim,
        httpx.Client(verify=sim.ssl_context(), timeout=10) as http,
    ):
        settings = admin_get(sim, http, "/config/v1")
        assert settings["message_parts"] is True  # on unless switched off
        assert (settings["edit_tenant_rps"], settings["edit_app_rps"]) == (3, 300)
        assert (settings["teams_per_tenant"], settings["channels_per_team"]) == (4, 3)
        assert admin_get(sim, http, "/config")["tenant_rps"] == 50
