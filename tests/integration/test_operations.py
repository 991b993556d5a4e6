"""Operators' tools against the real stack: cancel, export, and poison messages."""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import text

from producer import Producer
from producer.cli import main
from tests.integration import books
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast import ids
from threadcast.constants import QUEUE, SEND_TASK
from threadcast.contract import Broadcast, ContentType, Target, batch_to_wire
from threadcast.ledger import Claim, DeliveryState, Outcome
from threadcast.ledger.deliveries import EARLY_CLAIM

# One stack (the suite under 10 minutes: test_ledger.py covers the SQL on both).
pytestmark = pytest.mark.backends("sqlite")


def one_team(stack: Stack, n: int) -> list[dict[str, str]]:
    # One team: its 4 posts per second make the broadcast last long enough to act on.
    group = str(uuid.uuid4())
    return [
        {"tenant": stack.tenants[0], "group": group, "channel": f"19:op{i}@thread.tacv2"}
        for i in range(n)
    ]


def test_cancel_stops_what_is_not_sent_and_records_what_was(stack: Stack) -> None:
    content = f"<p>cancel {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        result = producer.send(content, one_team(stack, 80), content_type="html")
        wait_for(lambda: producer.ledger.broadcasts.counts(result.broadcast_id)["sent"] >= 4)
        cancelled = producer.cancel(result.broadcast_id)
    wait_for(lambda: stack.ledger.broadcasts.counts(result.broadcast_id)["sending"] == 0)
    counts = stack.ledger.broadcasts.counts(result.broadcast_id)
    assert counts["cancelled"] == cancelled > 0
    assert counts["sent"] + counts["cancelled"] == 80
    # Nothing cancelled is ever posted, even though its messages were already waiting.
    wait_for(lambda: stack.redis.llen(QUEUE) == 0, what="the queue to drain")
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == stack.ledger.broadcasts.counts(result.broadcast_id)["sent"]


def test_cancel_unknown_broadcast_is_an_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    assert main(["cancel", "nope"]) == 1
    assert "no broadcast with id 'nope'" in capsys.readouterr().err
    assert main(["retry", "nope"]) == 1
    assert main(["retry", "x", "--state", "failed,bogus"]) == 2
    assert "--state: is not a state" in capsys.readouterr().err


def test_export_streams_deliveries_with_their_attempts(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    targets = [
        {
            "tenant": stack.tenants[i % 2],
            "group": str(uuid.uuid4()),
            "channel": f"19:x{i}@thread.skype",
        }
        for i in range(6)
    ]
    with Producer(stack.settings) as producer:
        result = producer.send("<p>audit</p>", targets, content_type="html")
    wait_for(lambda: stack.ledger.broadcasts.counts(result.broadcast_id)["sent"] == 6)

    assert (
        main(
            [
                "export",
                result.broadcast_id,
                "--format",
                "jsonl",
                "--output",
                str(tmp_path / "a.jsonl"),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    posts = {p["request_id"]: p for p in stack.sim.posts()}
    for row in rows:
        assert row["broadcast"] == result.broadcast_id and row["state"] == "sent"
        assert row["attempts"] == 1 and row["last_status"] == 204
        [attempt] = row["attempt_log"]
        assert attempt["request_id"] == row["last_request_id"] in posts
        assert posts[attempt["request_id"]]["client_request_id"] == attempt["client_request_id"]

    assert (
        main(
            ["export", result.broadcast_id, "--format", "csv", "--output", str(tmp_path / "a.csv")]
        )
        == 0
    )
    with (tmp_path / "a.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {r["delivery"] for r in table} == {r["delivery"] for r in rows}
    assert {
        "broadcast",
        "delivery",
        "tenant",
        "group",
        "channel",
        "state",
        "attempts",
        "last_status",
        "last_error_code",
        "last_request_id",
    } <= set(table[0])

    capsys.readouterr()
    assert main(["export", "no-such-broadcast", "--output", str(tmp_path / "b.csv")]) == 1
    assert not (tmp_path / "b.csv").exists()
    assert main(["export", "--output", "/proc/no/such/dir/x.csv"]) == 2
    assert "--output: cannot be written" in capsys.readouterr().err


def test_poison_messages_are_recorded_and_never_crash_the_worker(stack: Stack) -> None:
    app = Celery(broker=stack.settings.redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    bad = [
        {"v": 99, "delivery": str(uuid.uuid4())},
        "garbage",
        {"v": 1, "delivery": "not-a-guid"},
        {
            "v": 1,
            "delivery": str(uuid.uuid4()),
            "broadcast": "b",
            "tenant": stack.tenants[0],
            "group": str(uuid.uuid4()),
            "channel": "19:ghost@thread.tacv2",
            "permit": None,
        },
    ]
    for body in bad:
        app.send_task(SEND_TASK, args=[body], queue=QUEUE)
    app.close()

    def rejected() -> int:
        with stack.ledger.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM rejected_messages")).scalar() or 0)

    wait_for(lambda: rejected() >= 4, what="four rejected messages")
    with stack.ledger.engine.connect() as conn:
        reasons = [r for (r,) in conn.execute(text("SELECT reason FROM rejected_messages"))]
    assert any("unknown message version 99" in r for r in reasons)
    assert any("unknown delivery id" in r for r in reasons)
    assert stack.worker.process.poll() is None  # still running
    # ...and still working.
    with Producer(stack.settings) as producer:
        after = producer.send("<p>after poison</p>", one_team(stack, 1), content_type="html")
    wait_for(lambda: stack.ledger.broadcasts.counts(after.broadcast_id)["sent"] == 1)


def test_a_batch_message_delivers_its_good_deliveries_and_rejects_the_bad_one(
    stack: Stack,
) -> None:
    # Deliveries the ledger holds but no gate released (as after an operator's re-publish):
    # one Celery message carrying them, with a broken element in the middle.
    targets = tuple(Target(**t) for t in one_team(stack, 3))
    broadcast = Broadcast(
        ids.new_broadcast_id(), f"<p>batch {uuid.uuid4()}</p>", ContentType.HTML, targets
    )
    wanted = broadcast.deliveries()
    stack.ledger.broadcasts.add(broadcast, wanted, datetime.now(UTC))
    body = batch_to_wire([d.message() for d in wanted])
    marker = f"not-a-guid-{uuid.uuid4().hex}"
    poison = {"v": 1, "delivery": marker}
    app = Celery(broker=stack.settings.redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    app.send_task(SEND_TASK, args=[[body[0], poison, *body[1:]]], queue=QUEUE)
    app.close()

    wait_for(lambda: stack.ledger.broadcasts.counts(broadcast.id)["sent"] == 3)
    with stack.ledger.engine.connect() as conn:
        found = conn.execute(
            text("SELECT reason, message FROM rejected_messages WHERE message LIKE :m"),
            {"m": f"%{marker}%"},
        ).all()
    assert len(found) == 1 and "delivery" in found[0].reason
    with stack.ledger.engine.connect() as conn:
        attempts = conn.execute(
            text(
                "SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.broadcast_id = :b"
            ),
            {"b": broadcast.id},
        ).scalar()
    assert attempts == 3  # each sent once, by one attempt


def test_a_message_that_comes_back_before_the_retry_time_waits_for_it(stack: Stack) -> None:
    # As when Celery delivers a batch again after its worker died: one of its deliveries got
    # a 503 and waits 3 s for its retry. The early message must not cut that short.
    targets = tuple(Target(**t) for t in one_team(stack, 1))
    broadcast = Broadcast(
        ids.new_broadcast_id(), f"<p>early {uuid.uuid4()}</p>", ContentType.HTML, targets
    )
    (delivery,) = broadcast.deliveries()
    now = datetime.now(UTC)
    stack.ledger.broadcasts.add(broadcast, [delivery], now)
    claim = books.claim(stack.ledger, delivery.id, "gone", "c1", timedelta(seconds=60), now)
    assert isinstance(claim, Claim)
    due = now + timedelta(seconds=3)
    stack.ledger.deliveries.finish(
        claim, Outcome(DeliveryState.RETRYING, http_status=503, next_attempt_at=due), now
    )
    app = Celery(broker=stack.settings.redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    app.send_task(SEND_TASK, args=[batch_to_wire([delivery.message()])], queue=QUEUE)
    app.close()

    wait_for(lambda: stack.ledger.broadcasts.counts(broadcast.id)["sent"] == 1)
    with stack.ledger.engine.connect() as conn:
        started = conn.execute(
            text("SELECT started_at FROM attempts WHERE delivery_id = :d AND number = 2"),
            {"d": delivery.id},
        ).scalar_one()
    started = datetime.fromisoformat(started) if isinstance(started, str) else started
    started = started.replace(tzinfo=UTC) if started.tzinfo is None else started
    assert started >= due - EARLY_CLAIM
