"""Edits and recalls on every surface: ``threadcast edit`` / ``recall`` / ``changes``,
``status``, ``export`` and the HTTP API, against a real ledger (each backend) and Redis.

No worker runs: the broadcasts' deliveries are recorded sent (with a message id, or
without one as the seed's chatthreads endpoint sends them) through the ledger's own claim
and finish, and a change's progress is recorded through the change book's runner calls,
as a worker would record it.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from producer.cli import main
from producer.client import Producer
from tests.conftest import BACKENDS, _database_url
from tests.integration import books
from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import STACK_REDIS_DB
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import ValidationError
from threadcast.ledger import Claim, DeliveryState, Ledger, Outcome
from threadcast.ledger.changes import ItemResult, ItemState
from threadcast.settings import Settings

KEY = "changes-" + "k" * 24
OTHER_KEY = "others-" + "o" * 25
KEYS = f"svc:{KEY},other:{OTHER_KEY}"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LEASE = timedelta(seconds=60)
NO_ID = "no_message_id (sent by chatthreads: no message id)"
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": []}


@dataclass
class World:
    env: dict[str, str]  # THREADCAST_* of this ledger and Redis, changes on
    settings: Settings
    ledger: Ledger
    redis: redis.Redis


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[World]:
    url = redis_url.rsplit("/", 1)[0] + f"/{STACK_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    for database_url in _database_url(request.param, tmp_path_factory):
        env = {
            "THREADCAST_REDIS_URL": url,
            "THREADCAST_DATABASE_URL": database_url,
            "THREADCAST_CHANGES": "true",
        }
        settings = Settings(redis_url=url, database_url=database_url, changes=True)
        ledger = Ledger.open(database_url)
        try:
            yield World(env, settings, ledger, client)
        finally:
            ledger.close()
            client.flushdb()
            client.close()


@dataclass
class Sent:
    broadcast_id: str
    with_id: list[str]  # sent with a message id
    without_id: list[str]  # sent by chatthreads: no message id
    failed: list[str]
    queued: list[str]


def sent_broadcast(
    world: World, source: str = "svc", with_id: int = 3, without_id: int = 1, queued: int = 1
) -> Sent:
    """A broadcast recorded and sent as a worker records it: ``with_id`` deliveries sent by
    v1.0 (a message id), ``without_id`` by chatthreads (none), one failed, ``queued`` not
    sent yet."""
    now = datetime.now(UTC)
    group = str(uuid.uuid4())
    count = with_id + without_id + 1 + queued
    targets = tuple(Target(TENANT, group, f"19:chg{i}x@thread.tacv2") for i in range(count))
    broadcast_id = f"chg-{uuid.uuid4().hex[:12]}"
    broadcast = Broadcast(broadcast_id, "<p>first</p>", ContentType.HTML, targets, source=source)
    made = [d.id for d in broadcast.deliveries()]
    world.ledger.broadcasts.add(broadcast, broadcast.deliveries(), now)
    sent = Sent(
        broadcast_id,
        made[:with_id],
        made[with_id : with_id + without_id],
        made[with_id + without_id : with_id + without_id + 1],
        made[with_id + without_id + 1 :],
    )
    outcomes = [(d, Outcome(DeliveryState.SENT, 201, message_id=f"m-{d}")) for d in sent.with_id]
    outcomes += [(d, Outcome(DeliveryState.SENT, 204)) for d in sent.without_id]
    outcomes += [
        (d, Outcome(DeliveryState.FAILED, 403, error_code="Forbidden", error_message="no"))
        for d in sent.failed
    ]
    for delivery_id, outcome in outcomes:
        claim = books.claim(world.ledger, delivery_id, "w1", str(uuid.uuid4()), LEASE, now)
        assert isinstance(claim, Claim)
        assert world.ledger.deliveries.finish(claim, outcome, now)
    return sent


def run_change(world: World, change_id: str, results: dict[str, ItemState]) -> None:
    """Record attempts on the change as its runner does: started, then answered."""
    now = datetime.now(UTC)
    started = [(d, 1, str(uuid.uuid4())) for d in results]
    world.ledger.changes.start(change_id, "w-test", started, now)
    answers = []
    for (delivery_id, number, request_id), (_, state) in zip(started, results.items(), strict=True):
        failed = state is ItemState.FAILED
        answers.append(
            ItemResult(
                delivery_id,
                number,
                request_id,
                state,
                http_status=403 if failed else 200,
                request_id=f"req-{delivery_id[:8]}",
                error_code="Forbidden" if failed else None,
                error_message="the user left the team" if failed else None,
                latency_ms=12.0,
            )
        )
    world.ledger.changes.record(change_id, answers, now)


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    for name in [n for n in os.environ if n.startswith("THREADCAST_")]:
        monkeypatch.delenv(name)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return world


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def test_edit_prints_the_change_and_status_shows_it(
    cli: World, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = sent_broadcast(cli, source="cli")
    capsys.readouterr()
    assert run(["status", sent.broadcast_id]) == 0
    assert "changes:" not in capsys.readouterr().out  # none yet: the report as before

    assert run(["edit", sent.broadcast_id, "--html", "<p>second</p>"]) == 0
    out = capsys.readouterr().out
    [change] = cli.ledger.changes.of_broadcast(sent.broadcast_id)
    assert out.split()[-1] == change.id
    assert out.splitlines()[0] == (
        f"edit #1 running: 3 pending, 1 {NO_ID}, 2 not_sent (not sent: no message)"
    )
    assert change.source == "cli"

    run_change(cli, change.id, {sent.with_id[0]: ItemState.DONE, sent.with_id[1]: ItemState.FAILED})
    assert run(["status", sent.broadcast_id]) == 0
    out = capsys.readouterr().out
    assert out.index("endpoint:") < out.index("changes:")  # the report as before, then these
    assert f"  edit #1 running: 1 done, 1 pending, 1 failed, 1 {NO_ID}" in out
    assert "         1 failed Forbidden: the user left the team" in out

    assert run(["status", sent.broadcast_id, "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)["changes"]
    assert shown["id"] == change.id and shown["kind"] == "edit" and shown["number"] == 1
    assert shown["counts"]["done"] == 1 and shown["counts"]["no_message_id"] == 1
    assert shown["errors"] == [
        {
            "state": "failed",
            "error_code": "Forbidden",
            "example": "the user left the team",
            "count": 1,
        }
    ]

    # The same edit again: nothing new, its failed delivery goes again.
    assert run(["edit", sent.broadcast_id, "--html", "<p>second</p>", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["id"] == change.id and made["created"] is False and made["again"] == 1
    assert made["counts"]["pending"] == 2 and made["counts"]["failed"] == 0
    assert run(["edit", sent.broadcast_id, "--html", "<p>second</p>"]) == 0
    assert "the same edit was asked for before: nothing new" in capsys.readouterr().out


def test_edit_takes_the_parts_send_takes(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = sent_broadcast(cli)
    (tmp_path / "notice.json").write_text(json.dumps(CARD))
    html = '<p>Hi <at id="0">General</at></p><attachment id="notice"></attachment>'
    argv = ["edit", sent.broadcast_id, "--html", html, "--subject", "Moved", "--importance"]
    argv += ["urgent", "--card", "notice.json", "--mention-channel", "0:General"]
    assert run(argv) == 0
    change_id = capsys.readouterr().out.split()[-1]
    stored = cli.ledger.changes.message(change_id)
    assert stored is not None and stored.content == html
    assert stored.parts.subject == "Moved" and stored.parts.importance.value == "urgent"
    assert [card.id for card in stored.parts.cards] == ["notice"]
    assert len(stored.parts.mentions) == 1


def test_recall_cancels_what_was_not_sent_and_refuses_edits_and_retries(
    cli: World, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = sent_broadcast(cli)
    assert run(["edit", sent.broadcast_id, "--text", "second"]) == 0
    edit_id = capsys.readouterr().out.split()[-1]
    assert run(["recall", sent.broadcast_id]) == 0
    out = capsys.readouterr().out
    recall_id = out.split()[-1]
    assert out.startswith("recall #2 running: 3 pending, 1 no_message_id")
    assert f"superseded: {edit_id}" in out
    assert cli.ledger.broadcasts.counts(sent.broadcast_id)["cancelled"] == len(sent.queued)
    assert cli.ledger.changes.get(edit_id).state.value == "superseded"

    assert run(["recall", sent.broadcast_id, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["id"] == recall_id and again["created"] is False and again["kind"] == "recall"

    assert run(["edit", sent.broadcast_id, "--text", "third"]) == 2
    assert f"was recalled (change {recall_id})" in capsys.readouterr().err
    assert run(["retry", sent.broadcast_id]) == 2
    assert "was recalled" in capsys.readouterr().err
    assert len(cli.ledger.changes.of_broadcast(sent.broadcast_id)) == 2

    assert run(["changes", sent.broadcast_id]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"broadcast {sent.broadcast_id}: 2 changes (edits and recall)"
    assert f"  edit #1 superseded: 1 {NO_ID}, 5 superseded  [change {edit_id}]" in out
    assert f"[change {recall_id}]" in out


def test_changes_shows_a_deliverys_attempts(cli: World, capsys: pytest.CaptureFixture[str]) -> None:
    sent = sent_broadcast(cli)
    assert run(["changes", sent.broadcast_id]) == 0
    assert capsys.readouterr().out == f"broadcast {sent.broadcast_id}: no edit or recall\n"
    assert run(["edit", sent.broadcast_id, "--text", "second"]) == 0
    change_id = capsys.readouterr().out.split()[-1]
    target = sent.with_id[0]
    run_change(cli, change_id, {target: ItemState.FAILED})

    assert run(["changes", sent.broadcast_id, "--attempts", target]) == 0
    out = capsys.readouterr().out
    assert f"    delivery {target} in edit #1: failed" in out
    assert "by w-test: failed HTTP 403 Forbidden: the user left the team in 12 ms" in out
    assert "      1 failed Forbidden: the user left the team" in out

    assert run(["changes", sent.broadcast_id, "--attempts", sent.without_id[0], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["broadcast_id"] == sent.broadcast_id and len(shown["changes"]) == 1
    [found] = shown["attempts"]
    assert found["state"] == "no_message_id" and found["attempts"] == []

    unknown = str(uuid.uuid4())
    assert run(["changes", sent.broadcast_id, "--attempts", unknown]) == 1
    assert f"no delivery with id '{unknown}' in broadcast" in capsys.readouterr().err
    assert run(["changes", sent.broadcast_id, "--attempts", "not-a-delivery"]) == 2
    assert "--attempts: must be a GUID" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["edit", "recall", "changes"])
def test_an_unknown_broadcast_is_an_error(
    cli: World, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    body = ["--text", "x"] if command == "edit" else []
    assert run([command, "no-such-broadcast", *body]) == 1
    assert "no broadcast with id 'no-such-broadcast'" in capsys.readouterr().err
    assert run([command, "bad id", *body]) == 2
    assert "BROADCAST: must be 1-128 characters" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["edit", "--text", "x"], ["recall"]])
def test_changes_off_is_refused_by_name(
    cli: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    sent = sent_broadcast(cli)
    monkeypatch.setenv("THREADCAST_CHANGES", "false")
    assert run([command[0], sent.broadcast_id, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "THREADCAST_CHANGES" in err and err.count("\n") == 1
    assert cli.ledger.changes.of_broadcast(sent.broadcast_id) == []
    assert cli.ledger.broadcasts.counts(sent.broadcast_id)["cancelled"] == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--html", "<p>x</p>", "--card", "bad.json"], "--card bad.json: "),
        (["--html", "<p>x</p>", "--mention-channel", "0:General"], "--mention-channel 0:General"),
        (["--text", "   "], "content: must be non-empty"),
        (["--text", "x", "--importance", "loud"], "--importance"),
        (["--file", "missing.html"], "--file: cannot be read"),
    ],
)
def test_bad_edit_stores_nothing(
    cli: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    sent = sent_broadcast(cli)
    (tmp_path / "bad.json").write_text('{"type": "NotACard"}')
    assert run(["edit", sent.broadcast_id, *flags]) == 2
    assert message in capsys.readouterr().err
    assert cli.ledger.changes.of_broadcast(sent.broadcast_id) == []


def test_export_has_each_deliverys_state_in_each_change(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = sent_broadcast(cli)
    assert run(["edit", sent.broadcast_id, "--text", "second"]) == 0
    edit_id = capsys.readouterr().out.split()[-1]
    run_change(cli, edit_id, {sent.with_id[0]: ItemState.DONE, sent.with_id[1]: ItemState.FAILED})
    assert run(["recall", sent.broadcast_id]) == 0
    recall_id = capsys.readouterr().out.split()[-1]

    assert run(["export", sent.broadcast_id, "--output", "a.jsonl"]) == 0
    rows = {r["delivery"]: r for r in map(json.loads, Path("a.jsonl").read_text().splitlines())}
    assert list(rows[sent.with_id[1]])[-2:] == ["attempt_log", "changes"]
    assert rows[sent.with_id[1]]["changes"] == [
        {
            "change": edit_id,
            "number": 1,
            "kind": "edit",
            "state": "failed",
            "error_code": "Forbidden",
        },
        {
            "change": recall_id,
            "number": 2,
            "kind": "recall",
            "state": "pending",
            "error_code": None,
        },
    ]
    assert [c["state"] for c in rows[sent.with_id[0]]["changes"]] == ["done", "pending"]
    assert [c["state"] for c in rows[sent.without_id[0]]["changes"]] == ["no_message_id"] * 2
    assert [c["state"] for c in rows[sent.queued[0]]["changes"]] == ["superseded", "not_sent"]

    assert run(["export", sent.broadcast_id, "--format", "csv", "--output", "a.csv"]) == 0
    with Path("a.csv").open() as f:
        reader = csv.DictReader(f)
        table = {r["delivery"]: r for r in reader}
        header = list(reader.fieldnames or [])
    assert header[:2] == ["broadcast", "delivery"]
    assert header[-4:] == ["attempt_log", "changes", "edit_1", "recall_2"]
    assert (table[sent.with_id[0]]["edit_1"], table[sent.with_id[0]]["recall_2"]) == (
        "done",
        "pending",
    )
    assert [c["state"] for c in json.loads(table[sent.failed[0]]["changes"])] == [
        "superseded",
        "not_sent",
    ]

    # Every broadcast at once: the changes as JSON, no per-change columns.
    assert run(["export", "--format", "csv", "--output", "all.csv"]) == 0
    with Path("all.csv").open() as f:
        reader = csv.DictReader(f)
        everything = {r["delivery"]: r for r in reader}
        assert (reader.fieldnames or [])[-2:] == ["attempt_log", "changes"]
    assert json.loads(everything[sent.with_id[0]]["changes"])[1]["change"] == recall_id


# -- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[RunningApi]:
    running = start_api(world.settings.model_copy(update={"api_keys": SecretStr(KEYS)}))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(server: RunningApi) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def other(server: RunningApi) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {OTHER_KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        yield client


def fields_of(response: httpx.Response) -> list[str]:
    error = response.json()["error"]
    assert error["status"] == response.status_code and error["message"]
    return [f["field"] for f in error["fields"]]


def test_edit_and_recall_over_http(world: World, http: httpx.Client) -> None:
    sent = sent_broadcast(world)
    base = f"/v1/broadcasts/{sent.broadcast_id}"
    body = {"content": "<p>second</p>", "subject": "Moved", "cards": [{"id": "n", "content": CARD}]}
    first = http.post(f"{base}/edit", json=body)
    assert first.status_code == 201, first.text
    made = first.json()
    assert made["kind"] == "edit" and made["number"] == 1 and made["source"] == "svc"
    assert made["created"] is True and made["superseded"] == [] and made["again"] == 0
    assert made["counts"]["pending"] == 3 and made["counts"]["no_message_id"] == 1
    stored = world.ledger.changes.message(made["id"])
    assert stored is not None and stored.parts.subject == "Moved"

    run_change(world, made["id"], {sent.with_id[0]: ItemState.FAILED})
    again = http.post(f"{base}/edit", json=body)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["again"] == 1 and again.json()["id"] == made["id"]

    listed = http.get(f"{base}/changes").json()
    assert listed["broadcast_id"] == sent.broadcast_id
    [change] = listed["changes"]
    assert change["id"] == made["id"] and change["summary"].startswith("edit #1 running:")
    assert http.get(base).json()["changes"] == listed["changes"]  # the status report

    path = f"{base}/changes/{made['id']}/deliveries/{sent.with_id[0]}/attempts"
    attempts = http.get(path).json()
    assert attempts["state"] == "pending" and attempts["kind"] == "edit"
    [attempt] = attempts["attempts"]
    assert attempt["outcome"] == "failed" and attempt["error_code"] == "Forbidden"
    assert attempt["http_status"] == 403 and attempt["worker"] == "w-test"

    recalled = http.post(f"{base}/recall")
    assert recalled.status_code == 201 and recalled.json()["superseded"] == [made["id"]]
    assert http.post(f"{base}/recall").status_code == 200
    refused = http.post(f"{base}/edit", json={"content": "third"})
    assert refused.status_code == 422 and fields_of(refused) == ["broadcast_id"]
    assert "was recalled" in refused.json()["error"]["message"]
    assert http.post(f"{base}/retry").status_code == 422
    assert len(world.ledger.changes.of_broadcast(sent.broadcast_id)) == 2


def test_another_keys_broadcast_is_not_found(
    world: World, http: httpx.Client, other: httpx.Client
) -> None:
    sent = sent_broadcast(world)
    base = f"/v1/broadcasts/{sent.broadcast_id}"
    change_id = http.post(f"{base}/edit", json={"content": "mine"}).json()["id"]
    attempts = f"{base}/changes/{change_id}/deliveries/{sent.with_id[0]}/attempts"
    for response in (
        other.post(f"{base}/edit", json={"content": "theirs"}),
        other.post(f"{base}/recall"),
        other.get(f"{base}/changes"),
        other.get(attempts),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["message"] == (
            f"no broadcast with id {sent.broadcast_id!r}"
        )
    assert len(world.ledger.changes.of_broadcast(sent.broadcast_id)) == 1


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("post", "edit"),
        ("post", "recall"),
        ("get", "changes"),
        ("get", f"changes/{uuid.uuid4()}/deliveries/{uuid.uuid4()}/attempts"),
    ],
)
def test_unknown_ids_are_404(http: httpx.Client, method: str, route: str) -> None:
    response = http.request(method, f"/v1/broadcasts/no-such-one/{route}", json={"content": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no broadcast with id 'no-such-one'"


def test_unknown_or_malformed_change_and_delivery_ids(world: World, http: httpx.Client) -> None:
    sent = sent_broadcast(world)
    base = f"/v1/broadcasts/{sent.broadcast_id}"
    change_id = http.post(f"{base}/recall").json()["id"]
    delivery = sent.with_id[0]
    unknown = str(uuid.uuid4())
    for path, message in (
        (f"changes/{unknown}/deliveries/{delivery}", f"no edit or recall with id {unknown!r}"),
        (f"changes/{change_id}/deliveries/{unknown}", f"no delivery with id {unknown!r}"),
    ):
        response = http.get(f"{base}/{path}/attempts")
        assert response.status_code == 404 and message in response.json()["error"]["message"]
    other = sent_broadcast(world)
    elsewhere = http.get(f"{base}/changes/{change_id}/deliveries/{other.with_id[0]}/attempts")
    assert elsewhere.status_code == 404
    for path, field in (
        (f"changes/not-a-change/deliveries/{delivery}", "change_id"),
        (f"changes/{change_id}/deliveries/not-one", "delivery_id"),
    ):
        response = http.get(f"{base}/{path}/attempts")
        assert response.status_code == 422 and fields_of(response) == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"content": "<p>x</p>", "cards": [{"id": "n", "content": {"type": "Nope"}}]},
            "cards[0].content",
        ),
        (
            {"content": "<p>x</p>", "cards": [{"id": "n", "content": "{not json"}]},
            "cards[0].content",
        ),
        ({"subject": "no content"}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x", "importance": "loud"}, "importance"),
        ({"content": "x", "targets": []}, "targets"),
        (
            {"content": "<p>x</p>", "mentions": [{"id": 0, "text": "A", "kind": "channel"}]},
            "mentions[0]",
        ),
    ],
)
def test_bad_edit_is_422_naming_the_field_and_stores_nothing(
    world: World, http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    sent = sent_broadcast(world)
    response = http.post(f"/v1/broadcasts/{sent.broadcast_id}/edit", json=body)
    assert response.status_code == 422 and fields_of(response) == [field], response.text
    assert world.ledger.changes.of_broadcast(sent.broadcast_id) == []


def test_changes_off_is_422_naming_the_setting(world: World) -> None:
    sent = sent_broadcast(world)
    off = world.settings.model_copy(update={"api_keys": SecretStr(KEYS), "changes": False})
    running = start_api(off)
    try:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=running.base_url, headers=headers, timeout=30) as client:
            base = f"/v1/broadcasts/{sent.broadcast_id}"
            for response in (
                client.post(f"{base}/edit", json={"content": "x"}),
                client.post(f"{base}/recall"),
            ):
                assert response.status_code == 422 and fields_of(response) == ["THREADCAST_CHANGES"]
            assert client.get(f"{base}/changes").json()["changes"] == []
    finally:
        running.stop()
    assert world.ledger.changes.of_broadcast(sent.broadcast_id) == []
    assert world.ledger.broadcasts.counts(sent.broadcast_id)["cancelled"] == 0


def test_the_python_api_refuses_to_edit_a_recalled_broadcast(world: World) -> None:
    sent = sent_broadcast(world)
    with Producer(world.settings) as producer:
        recall = producer.recall(sent.broadcast_id, source="svc").change
        with pytest.raises(ValidationError, match="was recalled") as refused:
            producer.edit(sent.broadcast_id, "<p>after</p>", source="svc")
        assert refused.value.field == "broadcast_id"
        assert [c.id for c in producer.changes(sent.broadcast_id)] == [recall.id]
