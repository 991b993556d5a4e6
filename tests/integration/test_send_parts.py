"""Message parts (issue 15 item 1) on every surface: ``Producer.send``, ``threadcast send``,
``POST /v1/broadcasts``, ``send --at`` and recurring schedules.

Bad input for every part is refused naming the part, and nothing is stored (the ledger's rows
and every Redis key as before); a broadcast with every part is stored once, its parts with it.
Real Redis, the ledger on each backend, the HTTP API served by uvicorn. What a worker makes of
the parts is tested with the worker.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producer import Producer
from producer.cli import main
from producer.scheduler import Schedules
from producer.scheduler.plan import occurrence_broadcast_id
from producer.scheduler.recurring import LaunchOccurrences
from tests.conftest import BACKENDS, _database_url
from tests.integration.apiserver import RunningApi, start_api
from tests.integration.stack import footprint
from threadcast.dispatch import keys
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.message import Card, Image, Importance, Mention, MentionKind, MessageParts
from threadcast.settings import Settings, load_settings

KEY = "parts-" + "k" * 26
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
GIF = b"GIF89a" + bytes(32)
BMP = b"BM" + bytes(64)
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Hi"}]}
USER = "5b6a7c8d-1e2f-4a3b-9c8d-7e6f5a4b3c2d"
FULL_CONTENT = (
    '<p>Hello <at id="0">General</at> and <at id="1">Ada Lovelace</at></p>'
    '<img src="image:logo"><attachment id="notes"></attachment>'
)


@dataclass
class World:
    settings: Settings
    ledger: Ledger
    redis: redis.Redis
    tenant: str
    http: httpx.Client
    env: dict[str, str] = field(default_factory=dict)

    def target(self, **variables: object) -> dict[str, Any]:
        channel = f"19:{uuid.uuid4().hex}@thread.tacv2"
        return {"tenant": self.tenant, "group": str(uuid.uuid4()), "channel": channel} | variables

    def footprint(self) -> tuple[object, ...]:
        return footprint(self.ledger, self.redis)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[World]:
    """A ledger (each backend), a clean Redis, a signed-in tenant and the API serving them."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    for database_url in _database_url(request.param, tmp_path_factory):
        settings = load_settings(
            redis_url=redis_url, database_url=database_url, api_keys=f"svc:{KEY}"
        )
        ledger = Ledger.open(database_url)
        tenant = str(uuid.uuid4())
        ledger.token_caches.save(tenant, "ciphertext: signed in", datetime.now(UTC))
        server: RunningApi = start_api(settings)
        http = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        )
        env = {"THREADCAST_DATABASE_URL": database_url, "THREADCAST_REDIS_URL": redis_url}
        try:
            yield World(settings, ledger, client, tenant, http, env)
        finally:
            http.close()
            server.stop()
            ledger.close()
            client.flushdb()
    client.close()


@pytest.fixture
def producer(world: World) -> Iterator[Producer]:
    with Producer(world.settings) as made:
        yield made


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    for name in [n for n in os.environ if n.startswith("THREADCAST_")]:
        monkeypatch.delenv(name)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return world


@pytest.fixture
def unchanged(world: World) -> Iterator[None]:
    """Nothing stored by the test: the ledger's rows and every Redis key as before."""
    before = world.footprint()
    yield
    assert world.footprint() == before


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


# --- one bad message, three surfaces -----------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A message with one bad part; ``part`` is how Python and HTTP name it, ``flag`` how the
    CLI does (a regular expression each)."""

    name: str
    part: str
    flag: str
    content: str = "<p>hi</p>"
    content_type: str = "html"
    subject: str | None = None
    importance: str = "normal"
    cards: tuple[tuple[str, Any], ...] = ()
    images: tuple[tuple[str, bytes], ...] = ()
    mentions: tuple[dict[str, Any], ...] = ()
    reason: str = ""

    def python(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "subject": self.subject,
            "importance": self.importance,
            "cards": [{"id": i, "content": c} for i, c in self.cards],
            "images": [{"name": n, "data": d} for n, d in self.images],
            "mentions": list(self.mentions),
        }

    def body(self, world: World) -> dict[str, Any]:
        body: dict[str, Any] = {
            "content": self.content,
            "content_type": self.content_type,
            "targets": [world.target()],
            "importance": self.importance,
            "cards": [{"id": i, "content": c} for i, c in self.cards],
            "images": [{"name": n, "data": base64.b64encode(d).decode()} for n, d in self.images],
            "mentions": list(self.mentions),
        }
        if self.subject is not None:
            body["subject"] = self.subject
        return body

    def argv(self, world: World, folder: Path) -> list[str]:
        target = world.target()
        argv = ["send", "--tenant", target["tenant"], "--group", target["group"]]
        argv += ["--channel", target["channel"], f"--{self.content_type}", self.content]
        argv += ["--importance", self.importance]
        if self.subject is not None:
            argv += ["--subject", self.subject]
        for card_id, content in self.cards:
            path = folder / f"{card_id}.json"
            path.write_text(content if isinstance(content, str) else json.dumps(content))
            argv += ["--card", str(path)]
        for name, data in self.images:
            path = folder / f"{name}.png"
            path.write_bytes(data)
            argv += ["--image", str(path)]
        for m in self.mentions:
            if m["kind"] == "user":
                argv += ["--mention-user", f"{m['id']}:{m['user_id']}:{m['text']}"]
            else:
                argv += [f"--mention-{m['kind']}", f"{m['id']}:{m['text']}"]
        return argv


BIG = 3 * 1024 * 1024 + 1
CASES = [
    Case(
        "card-not-json",
        r"cards\[0\]\.content",
        r"--card \S+notes\.json",
        cards=(("notes", "{"),),
        reason="is not JSON",
    ),
    Case(
        "card-not-adaptive",
        r"cards\[0\]\.content",
        r"--card \S+notes\.json",
        cards=(("notes", {"type": "HeroCard"}),),
        reason="AdaptiveCard",
    ),
    Case(
        "card-placed-not-given",
        r"content",
        r"content",
        content='<p>x</p><attachment id="other"></attachment>',
        cards=(("notes", CARD),),
        reason="places a card that is not given",
    ),
    Case(
        "image-too-large",
        r"images\[0\]\.data",
        r"--image \S+logo\.png",
        images=(("logo", PNG + bytes(BIG - len(PNG))),),
        reason="must be at most 3145728 bytes",
    ),
    Case(
        "image-bmp",
        r"images\[0\]\.data",
        r"--image \S+logo\.png",
        images=(("logo", BMP),),
        reason="not a PNG, JPEG or GIF",
    ),
    Case(
        "image-text",
        r"images\[0\]\.data",
        r"--image \S+logo\.png",
        images=(("logo", b"hello"),),
        reason="not a PNG, JPEG or GIF",
    ),
    Case(
        "image-unknown-ref",
        r"content",
        r"content",
        content='<p><img src="image:other"></p>',
        images=(("logo", PNG),),
        reason="no such image",
    ),
    Case(
        "mention-not-referenced",
        r"mentions\[0\]",
        r"--mention-channel 0:General",
        mentions=({"id": 0, "text": "General", "kind": "channel"},),
        reason="the body does not reference it",
    ),
    Case(
        "at-without-mention",
        r"content",
        r"content",
        content='<p><at id="0">General</at> <at id="3">Someone</at></p>',
        mentions=({"id": 0, "text": "General", "kind": "channel"},),
        reason="names a mention that is not given",
    ),
    Case(
        "mention-user-bad-id",
        r"mentions\[0\]\.user_id",
        r"--mention-user",
        content='<p><at id="0">Ada</at></p>',
        mentions=({"id": 0, "text": "Ada", "kind": "user", "user_id": "ada", "user_name": "Ada"},),
        reason="GUID",
    ),
    Case(
        "over-28kb",
        r"message",
        r"message",
        content="<p>" + "x" * 20_000 + "</p>",
        cards=(("notes", CARD | {"body": [{"type": "TextBlock", "text": "y" * 9000}]}),),
        reason="at most 28672 bytes",
    ),
    Case("subject-too-long", r"subject", r"--subject", subject="s" * 256, reason="1-255"),
    Case("bad-importance", r"importance", r"--importance", importance="loud", reason="'urgent'"),
    Case(
        "text-with-card",
        r"content_type",
        r"--text",
        content="plain",
        content_type="text",
        cards=(("notes", CARD),),
        reason="must be 'html'",
    ),
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_parts_from_python_name_the_part_and_store_nothing(
    world: World, producer: Producer, case: Case
) -> None:
    with pytest.raises(ValidationError) as caught:
        producer.send(case.content, [world.target()], **case.python())
    assert caught.match(rf"^{case.part}(?!\w)"), str(caught.value)
    assert case.reason in str(caught.value)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_parts_at_the_cli_name_the_flag_and_store_nothing(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    assert run(case.argv(cli, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("threadcast: error: ") and case.reason in err, err
    assert re.match(rf"threadcast: error: {case.flag}", err), err


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_parts_over_http_are_422_naming_the_part(world: World, case: Case) -> None:
    response = world.http.post("/v1/broadcasts", json=case.body(world))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert any(re.match(rf"{case.part}(?!\w)", f["field"]) for f in error["fields"])
    if case.name != "bad-importance":  # pydantic's words for a value outside a Literal
        assert case.reason in error["message"], error


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"cards": [{"id": "notes"}]}, "cards[0].content"),
        ({"cards": [{"id": "notes", "content": 5}]}, "cards[0].content"),
        ({"images": [{"name": "logo", "data": "not base64!"}]}, "images[0].data"),
        ({"images": [{"name": "logo", "data": "aGk=", "extra": 1}]}, "images[0].extra"),
        ({"mentions": [{"id": 0, "text": "x", "kind": "robot"}]}, "mentions[0].kind"),
        ({"mentions": [{"id": -1, "text": "x", "kind": "team"}]}, "mentions[0].id"),
        ({"importance": "loud"}, "importance"),
        ({"subject": 5}, "subject"),
    ],
)
def test_malformed_parts_over_http_are_422_naming_the_field(
    world: World, over: dict[str, Any], field: str
) -> None:
    body = {"content": "<p>hi</p>", "targets": [world.target()]} | over
    response = world.http.post("/v1/broadcasts", json=body)
    assert response.status_code == 422, response.text
    assert any(f["field"].startswith(field) for f in response.json()["error"]["fields"])


@pytest.mark.usefixtures("unchanged")
def test_the_cli_names_an_unreadable_file_and_a_malformed_mention(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = cli.target()
    one = ["send", "--tenant", target["tenant"], "--group", target["group"]]
    one += ["--channel", target["channel"], "--html", "<p>x</p>"]
    assert run([*one, "--card", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("threadcast: error: --card: cannot be read")
    assert run([*one, "--mention-user", "0:ada"]) == 2
    assert "--mention-user: must be ID:USER_ID:NAME" in capsys.readouterr().err
    assert run([*one, "--mention-team", "x:Team"]) == 2
    assert "--mention-team: must be ID:TEXT" in capsys.readouterr().err
    (tmp_path / "bad name!.json").write_text(json.dumps(CARD))
    assert run([*one, "--card", str(tmp_path / "bad name!.json")]) == 2
    assert "its name (the file's stem) must be 1-64" in capsys.readouterr().err


@pytest.mark.usefixtures("unchanged")
def test_a_message_over_graphs_request_size_with_its_images_is_refused(
    world: World, producer: Producer
) -> None:
    images = [{"name": f"i{n}", "data": PNG + bytes(1_600_000)} for n in range(2)]
    content = '<p><img src="image:i0"><img src="image:i1"></p>'
    with pytest.raises(ValidationError, match=r"^message: with its images must be at most"):
        producer.send(content, [world.target()], images=images)


@pytest.mark.usefixtures("unchanged")
def test_parts_are_refused_when_the_endpoint_is_pinned_to_chatthreads(world: World) -> None:
    pinned = world.settings.model_copy(update={"endpoint": "chatthreads"})
    with (
        Producer(pinned) as producer,
        pytest.raises(ValidationError, match=r"^THREADCAST_ENDPOINT: posts a body only"),
    ):
        producer.send("<p>x</p>", [world.target()], importance="urgent")
    with (
        Schedules(pinned) as schedules,
        pytest.raises(ValidationError, match=r"^THREADCAST_ENDPOINT: .*a subject"),
    ):
        schedules.add("0 9 * * MON", "UTC", "<p>x</p>", [world.target()], subject="Weekly")


# --- good input: stored once, with its parts ---------------------------------------------


def full_parts() -> MessageParts:
    return MessageParts(
        subject="Maintenance",
        importance=Importance.URGENT,
        cards=(Card("notes", json.dumps(CARD, separators=(",", ":"))),),
        images=(Image("logo", "image/png", PNG),),
        mentions=(
            Mention(0, "General", MentionKind.CHANNEL),
            Mention(1, "Ada Lovelace", MentionKind.USER, USER, "Ada Lovelace"),
        ),
    )


MENTIONS = [
    {"id": 0, "text": "General", "kind": "channel"},
    {"id": 1, "text": "Ada Lovelace", "kind": "user", "user_id": USER, "user_name": "Ada Lovelace"},
]


def stored_once(world: World, broadcast_id: str, deliveries: int) -> None:
    info = world.ledger.broadcasts.info(broadcast_id)
    assert info.parts == full_parts() and info.personal is False
    assert info.target_count == deliveries
    assert world.ledger.broadcasts.counts(broadcast_id)["queued"] == deliveries


def test_every_part_from_python_is_stored_once_and_published(
    world: World, producer: Producer, tmp_path: Path
) -> None:
    card = tmp_path / "notes.json"
    card.write_text(json.dumps(CARD))
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    targets = [world.target() for _ in range(3)]
    result = producer.send(
        FULL_CONTENT,
        targets,
        subject="Maintenance",
        importance="urgent",
        cards=[card],
        images=[logo],
        mentions=MENTIONS,
    )
    assert (result.created, result.deliveries, result.published) == (True, 3, 3)
    stored_once(world, result.broadcast_id, 3)
    assert world.redis.hlen(keys.KNOWN) >= 3
    # The same again under its id: nothing new; as MessageParts: the same broadcast.
    again = producer.send(
        FULL_CONTENT, targets, broadcast_id=result.broadcast_id, parts=full_parts()
    )
    assert again.created is False
    with pytest.raises(ValidationError, match=r"^parts: give either parts or"):
        producer.send(FULL_CONTENT, targets, parts=full_parts(), subject="x")


def test_every_part_from_the_cli_is_stored_once(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.json").write_text(json.dumps(CARD))
    (tmp_path / "logo.png").write_bytes(PNG)
    target = cli.target()
    argv = ["send", "--tenant", target["tenant"], "--group", target["group"]]
    argv += ["--channel", target["channel"], "--html", FULL_CONTENT, "--subject", "Maintenance"]
    argv += ["--importance", "urgent", "--card", "notes.json", "--image", "logo.png"]
    argv += ["--mention-channel", "0:General", "--mention-user", f"1:{USER}:Ada Lovelace"]
    assert run(argv) == 0
    broadcast_id = capsys.readouterr().out.split()[-1]
    stored_once(cli, broadcast_id, 1)

    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    assert run([*argv, "--at", at]) == 0
    later = capsys.readouterr().out.split()[-1]
    info = cli.ledger.broadcasts.info(later)
    assert info.parts == full_parts() and info.send_at is not None
    assert cli.ledger.broadcasts.counts(later)["scheduled"] == 1


def test_every_part_over_http_is_stored_once(world: World) -> None:
    body = {
        "content": FULL_CONTENT,
        "targets": [world.target(), world.target()],
        "subject": "Maintenance",
        "importance": "urgent",
        "cards": [{"id": "notes", "content": CARD}],
        "images": [{"name": "logo", "data": base64.b64encode(PNG).decode()}],
        "mentions": MENTIONS,
    }
    response = world.http.post("/v1/broadcasts", json=body)
    assert response.status_code == 201, response.text
    stored_once(world, response.json()["broadcast_id"], 2)
    # The card as JSON text is the same card.
    body["cards"] = [{"id": "notes", "content": json.dumps(CARD)}]
    body["send_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = world.http.post("/v1/broadcasts", json=body)
    assert response.status_code == 201, response.text
    assert world.ledger.broadcasts.info(response.json()["broadcast_id"]).parts == full_parts()


def test_a_broadcast_with_images_may_be_bigger_than_the_body_limit_by_their_data(
    world: World,
) -> None:
    """THREADCAST_API_MAX_BODY_BYTES (1 MiB) holds what is not image data; the images'
    data may add Graph's 4 MiB beside it."""
    image = PNG + bytes(2 * 1024 * 1024)  # 2.7 MiB as base64: over 1 MiB, within 1 + 4
    body = {
        "content": '<p><img src="image:big"></p>',
        "targets": [world.target()],
        "images": [{"name": "big", "data": base64.b64encode(image).decode()}],
    }
    response = world.http.post("/v1/broadcasts", json=body)
    assert response.status_code == 201, response.text
    assert world.ledger.broadcasts.info(response.json()["broadcast_id"]).parts.images[0].data == (
        image
    )
    before = world.footprint()
    body["content"] = "<p>" + "x" * (1024 * 1024) + '<img src="image:big"></p>'
    response = world.http.post("/v1/broadcasts", json=body)
    assert response.status_code == 413, response.text
    assert "images' data aside" in response.json()["error"]["message"]
    huge = {"content": "x", "targets": [world.target()], "pad": "x" * (6 * 1024 * 1024)}
    response = world.http.post("/v1/broadcasts", json=huge)
    assert response.status_code == 413
    assert world.footprint() == before


def test_a_schedule_stores_its_parts_and_each_occurrence_sends_them(
    world: World, producer: Producer, cli: World, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    with Schedules(world.settings) as schedules:
        record = schedules.add(
            "* * * * *",
            "UTC",
            FULL_CONTENT,
            [world.target(), world.target()],
            parts=full_parts(),
            now=t0,
        )
        assert schedules.get(record.id).parts == full_parts()
    first = t0 + timedelta(minutes=1)
    LaunchOccurrences(world.ledger, producer).run(first + timedelta(seconds=1))
    info = world.ledger.broadcasts.info(occurrence_broadcast_id(record.id, first))
    assert info.parts == full_parts() and info.target_count == 2

    # From the CLI: the same flags as send's.
    Path("notes.json").write_text(json.dumps(CARD))
    target = cli.target()
    argv = ["schedule", "add", "--cron", "0 9 * * MON", "--tz", "Europe/Berlin"]
    argv += ["--tenant", target["tenant"], "--group", target["group"]]
    argv += ["--channel", target["channel"], "--html", "<p>Weekly</p>", "--card", "notes.json"]
    assert run([*argv, "--importance", "high", "--subject", "Weekly"]) == 0
    out = capsys.readouterr().out
    assert "with a subject, importance high, 1 card" in out
    with Schedules(world.settings) as schedules:
        stored = schedules.get(out.split()[-1])
    assert stored.parts.importance is Importance.HIGH and stored.parts.cards[0].id == "notes"
    before = world.footprint(), len(schedules_now(world))
    assert run([*argv, "--importance", "loud"]) == 2
    assert "--importance: must be" in capsys.readouterr().err
    assert run([*argv, "--mention-team", "0:Team"]) == 2
    assert "--mention-team 0:Team: the body does not reference it" in capsys.readouterr().err
    assert (world.footprint(), len(schedules_now(world))) == before


def schedules_now(world: World) -> list[object]:
    with Schedules(world.settings) as schedules:
        return list(schedules.list(include_deleted=True))
