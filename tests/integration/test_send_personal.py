"""Personal text (issue 15 item 2) on every surface: a target's variables (the extra keys of a
target object, the extra columns of a targets file) fill in the content and subject per
delivery. A variable missing on any row is an error naming the row and the variable before
anything is stored, however far into a big stream it is. Real Redis, the ledger on each
backend, the HTTP API served by uvicorn."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from producer import Producer
from producer.scheduler import Schedules
from producer.scheduler.plan import occurrence_broadcast_id
from producer.scheduler.recurring import LaunchOccurrences
from tests.integration.test_send_parts import World, cli, producer, run, unchanged, world
from threadcast.errors import ValidationError
from threadcast.ledger.schema import deliveries

__all__ = ["cli", "producer", "unchanged", "world"]  # the fixtures, shared with test_send_parts

CONTENT = "<p>Hello {{ team_name }}, your region is {{ region }}</p>"


def stored_variables(world: World, broadcast_id: str) -> list[dict[str, str] | None]:
    query = (
        select(deliveries.c.variables)
        .where(deliveries.c.broadcast_id == broadcast_id)
        .order_by(deliveries.c.seq)
    )
    with world.ledger.engine.connect() as conn:
        return [None if v is None else json.loads(v) for (v,) in conn.execute(query)]


def test_a_personal_broadcast_stores_each_targets_variables(
    world: World, producer: Producer
) -> None:
    targets = [world.target(team_name=f"Team {n}", region="north") for n in range(3)]
    result = producer.send(CONTENT, targets, subject="For {{ team_name }}")
    assert (result.created, result.deliveries, result.published) == (True, 3, 3)
    info = world.ledger.broadcasts.info(result.broadcast_id)
    assert info.personal is True and info.parts.subject == "For {{ team_name }}"
    assert stored_variables(world, result.broadcast_id) == [
        {"team_name": f"Team {n}", "region": "north"} for n in range(3)
    ]


@pytest.mark.usefixtures("unchanged")
def test_a_variable_missing_on_a_row_names_the_row_and_the_variable(
    world: World, producer: Producer
) -> None:
    targets = [world.target(team_name="A", region="n") for _ in range(3)]
    targets[2].pop("region")
    with pytest.raises(ValidationError, match=r"^targets\[2\]\.region: is missing"):
        producer.send(CONTENT, targets)
    targets[2] |= {"region": "s"}
    targets[1].pop("team_name")
    with pytest.raises(ValidationError, match=r"^targets\[1\]\.team_name: is missing: subject"):
        producer.send("<p>hi</p>", targets, subject="For {{ team_name }}")


@pytest.mark.usefixtures("unchanged")
def test_a_row_missing_a_variable_at_the_end_of_a_big_stream_stores_nothing(
    world: World, producer: Producer
) -> None:
    def generate() -> Iterator[dict[str, str]]:
        group = str(uuid.uuid4())
        for n in range(10_000):
            target = {"tenant": world.tenant, "group": group, "channel": f"19:p{n}@thread.tacv2"}
            yield target | ({} if n == 9_999 else {"team_name": f"T{n}", "region": "r"})

    with pytest.raises(ValidationError, match=r"^targets\[9999\]\.(team_name|region): is"):
        producer.send(CONTENT, generate())


@pytest.mark.usefixtures("unchanged")
def test_variables_only_after_the_first_target_are_refused(
    world: World, producer: Producer
) -> None:
    targets = [world.target(), world.target(team_name="B")]
    with pytest.raises(ValidationError, match=r"^targets\[1\]: carries variables but"):
        producer.send("<p>hi</p>", targets)


@pytest.mark.usefixtures("unchanged")
def test_a_channel_named_twice_with_other_variables_is_refused(
    world: World, producer: Producer
) -> None:
    first = world.target(team_name="A", region="n")
    again = first | {"region": "s"}
    with pytest.raises(ValidationError, match=r"^targets: names this channel twice"):
        producer.send(CONTENT, [first, world.target(team_name="B", region="n"), again])


def test_a_channel_named_twice_with_the_same_variables_is_one_delivery(
    world: World, producer: Producer
) -> None:
    first = world.target(team_name="A", region="n")
    assert producer.send(CONTENT, [first, dict(first)]).deliveries == 1


@pytest.mark.usefixtures("unchanged")
def test_a_broken_template_names_the_content(world: World, producer: Producer) -> None:
    with pytest.raises(ValidationError, match=r"^content: is not a valid template"):
        producer.send("<p>{{ team_name </p>", [world.target(team_name="A")])


def test_a_csv_column_fills_in_the_text_from_the_cli(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = str(uuid.uuid4())
    rows = [f"{cli.tenant},{group},19:c{n}@thread.tacv2,Team {n},north" for n in range(4)]
    path = tmp_path / "teams.csv"
    path.write_text("tenant,group,channel,team_name,region\n" + "\n".join(rows) + "\n")
    assert run(["send", "--targets", str(path), "--html", CONTENT]) == 0
    broadcast_id = capsys.readouterr().out.split()[-1]
    assert cli.ledger.broadcasts.info(broadcast_id).personal is True
    assert stored_variables(cli, broadcast_id)[3] == {"team_name": "Team 3", "region": "north"}


@pytest.mark.usefixtures("unchanged")
def test_the_cli_names_the_row_and_the_variable_and_stores_nothing(
    cli: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = str(uuid.uuid4())
    rows = [f"{cli.tenant},{group},19:c{n}@thread.tacv2,Team {n}" for n in range(4)]
    path = tmp_path / "teams.csv"
    path.write_text("tenant,group,channel,team_name\n" + "\n".join(rows) + "\n")
    assert run(["send", "--targets", str(path), "--html", CONTENT]) == 2
    err = capsys.readouterr().err
    # Named by the file's line, not by the target's index.
    assert err.startswith(f"threadcast: error: {path} line 2.region: is missing: content uses"), err
    short = tmp_path / "short.csv"
    short.write_text("tenant,group,channel,team_name,region\n" + "\n".join(rows) + "\n")
    assert run(["send", "--targets", str(short), "--html", CONTENT]) == 2
    assert "short.csv line 2: must have exactly 5 columns" in capsys.readouterr().err
    targets = tmp_path / "teams.json"
    items: list[dict[str, object]] = [
        {"tenant": cli.tenant, "group": group, "channel": "19:j@thread.tacv2", "team_name": "A"}
    ]
    items.append(items[0] | {"channel": "19:k@thread.tacv2", "team_name": {"x": 1}})
    targets.write_text(json.dumps(items))
    assert run(["send", "--targets", str(targets), "--html", "<p>{{ team_name }}</p>"]) == 2
    assert "teams.json item 1.team_name: must be text or a number" in capsys.readouterr().err
    items[1] = {k: v for k, v in items[0].items() if k != "team_name"} | {"team": "B"}
    items[1]["channel"] = "19:k@thread.tacv2"
    targets.write_text(json.dumps(items))
    assert run(["send", "--targets", str(targets), "--html", "<p>{{ team_name }}</p>"]) == 2
    assert "teams.json item 1.team_name: is missing" in capsys.readouterr().err


def test_variables_over_http(world: World) -> None:
    good = [world.target(team_name="A", region="n"), world.target(team_name="B", region=7)]
    response = world.http.post("/v1/broadcasts", json={"content": CONTENT, "targets": good})
    assert response.status_code == 201, response.text
    assert stored_variables(world, response.json()["broadcast_id"])[1] == {
        "team_name": "B",
        "region": "7",
    }
    before = world.footprint()
    bad = [world.target(team_name="A", region="n"), world.target(team_name="B")]
    response = world.http.post("/v1/broadcasts", json={"content": CONTENT, "targets": bad})
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["targets[1].region"]
    bad[1] |= {"region": ["a list"]}
    response = world.http.post("/v1/broadcasts", json={"content": CONTENT, "targets": bad})
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["targets[1].region"]
    assert world.footprint() == before


def test_a_personal_schedule_keeps_its_variables_for_each_occurrence(
    world: World, producer: Producer
) -> None:
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    targets = [world.target(team_name="A", region="n"), world.target(team_name="B")]
    with Schedules(world.settings) as schedules:
        with pytest.raises(ValidationError, match=r"^targets\[1\]\.region: is missing"):
            schedules.add("* * * * *", "UTC", CONTENT, targets, now=t0)
        assert schedules.list(include_deleted=True) == []
        targets[1]["region"] = "s"
        record = schedules.add("* * * * *", "UTC", CONTENT, targets, now=t0)
        assert schedules.get(record.id).personal is True
    first = t0 + timedelta(minutes=1)
    LaunchOccurrences(world.ledger, producer).run(first + timedelta(seconds=1))
    broadcast_id = occurrence_broadcast_id(record.id, first)
    assert world.ledger.broadcasts.info(broadcast_id).personal is True
    assert stored_variables(world, broadcast_id) == [
        {"team_name": "A", "region": "n"},
        {"team_name": "B", "region": "s"},
    ]
