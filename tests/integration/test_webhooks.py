"""Signed webhook events (docs/WEBHOOKS.md), with real components: the ledger on every backend,
a real HTTP receiver on 127.0.0.1 verifying every request with ``standardwebhooks``, and, end
to end, a real worker posting to the simulator.

- bad THREADCAST_WEBHOOKS (http outside loopback, a secret in the wrong format, an unknown
  event) is refused naming the entry and field, the secret never echoed, nothing stored;
- a broadcast with failures: exactly one ``broadcast.completed`` and one
  ``broadcast.needs_attention`` per endpoint, verified, with the receiver down for the first
  seconds (retried with backoff, every attempt recorded);
- ``tenant.waiting_auth`` once per episode, ``schedule.missed`` once per occurrence;
- an endpoint failing long enough is paused (no more attempts) until resumed;
- a sender that died between a POST and its record sends again with the same webhook-id;
- a slow endpoint never holds up the scheduler's loop nor another endpoint;
- the CLI and the API (operator keys only; secrets never shown).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, update

from producer.cli import main as cli_main
from producer.scheduler.events import FindEvents
from producer.scheduler.webhooks import RetryPolicy, SendWebhooks
from tests.integration.apiserver import start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.receiver import Receiver
from tests.integration.stack import wait_for
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import ConfigError
from threadcast.ledger import Ledger
from threadcast.ledger.schedules import OccurrenceState, ScheduleRecord, ScheduleState
from threadcast.ledger.schema import broadcasts, deliveries
from threadcast.ledger.webhooks import NewEvent, PauseRule, WebhookState
from threadcast.lifecycle import Intake, Publisher
from threadcast.settings import load_settings
from threadcast.webhooks import EventType, WebhookEndpoint, new_secret, parse_webhooks

OPS_SECRET, AUDIT_SECRET = new_secret(), new_secret()
FAST = RetryPolicy(first=0.5, cap=2.0, retry_for=120.0, timeout=2.0)
T1, T2 = str(uuid.uuid4()), str(uuid.uuid4())
COMPLETED, ATTENTION = EventType.BROADCAST_COMPLETED.value, EventType.BROADCAST_NEEDS_ATTENTION


def endpoints(receiver: Receiver) -> tuple[WebhookEndpoint, ...]:
    """``ops`` wants every event, ``audit`` only the broadcasts' two."""
    return parse_webhooks(
        json.dumps(
            [
                {"name": "ops", "url": receiver.url("/ops"), "secret": OPS_SECRET, "events": "*"},
                {
                    "name": "audit",
                    "url": receiver.url("/audit"),
                    "secret": AUDIT_SECRET,
                    "events": [COMPLETED, ATTENTION.value],
                },
            ]
        )
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver({"/ops": OPS_SECRET, "/audit": AUDIT_SECRET})
    yield found
    found.stop()


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


def now() -> datetime:
    return datetime.now(UTC)


# -- bad settings ---------------------------------------------------------------------------
def entry(**over: object) -> dict[str, object]:
    return {"url": "https://hooks.example.com/x", "secret": OPS_SECRET, "events": "*"} | over


@pytest.mark.parametrize(
    ("bad", "field", "says"),
    [
        (entry(url="http://hooks.example.com/x"), "[1].url", "https:// outside loopback"),
        (entry(url="http://10.0.0.1:80/x"), "[1].url", "https:// outside loopback"),
        (entry(url="ftp://127.0.0.1/x"), "[1].url", "must be an https:// URL"),
        (entry(secret="s3cr3t-not-in-the-format"), "[1].secret", "whsec_"),
        (entry(secret="whsec_!!!notbase64!!!"), "[1].secret", "not valid base64"),
        (entry(secret="whsec_c2hvcnQ="), "[1].secret", "24 to 64 bytes"),
        (entry(events=["broadcast.done"]), "[1].events[0]", "not an event type"),
        (entry(events=[]), "[1].events", "non-empty list"),
        (entry(name="ok", colour="red"), "[1].colour", "unknown field"),
        (entry(name="first"), "[1].name", "also entry [0]'s name"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_the_field(
    bad: dict[str, object], field: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = json.dumps([entry(name="first"), bad])
    with pytest.raises(ConfigError) as caught:
        load_settings(webhooks=raw)
    message = str(caught.value)
    assert message.startswith(f"THREADCAST_WEBHOOKS{field}: "), message
    assert says in message
    assert OPS_SECRET not in message and "s3cr3t" not in message and "notbase64" not in message
    # The CLI says the same and stores nothing: no ledger is even created.
    database = tmp_path / "ledger.db"
    monkeypatch.setenv("THREADCAST_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("THREADCAST_WEBHOOKS", raw)
    assert cli_main(["webhooks"]) == 2
    assert not database.exists()


def test_good_settings_keep_the_secret_out_of_reprs() -> None:
    raw = json.dumps([entry(url="http://localhost:8080/hook"), entry(url="http://[::1]/h")])
    settings = load_settings(webhooks=raw)
    names = [e.name for e in settings.webhook_endpoints]
    assert names == ["localhost-8080", "1"]
    assert OPS_SECRET not in repr(settings) and OPS_SECRET not in repr(settings.webhook_endpoints)
    assert settings.webhook_endpoints[0].events == frozenset(EventType)


# -- finding events -------------------------------------------------------------------------
def add_broadcast(ledger: Ledger, states: list[tuple[str, str, str | None]]) -> str:
    """A broadcast with deliveries (tenant, state, error code), written as the ledger holds
    them (what moves them there is other tests' business)."""
    bid = f"b-{uuid.uuid4().hex[:12]}"
    at = now()
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(broadcasts).values(
                id=bid,
                fingerprint="f",
                content="<p>x</p>",
                content_type="html",
                source="tests",
                target_count=len(states),
                created_at=at,
            )
        )
        conn.execute(
            insert(deliveries),
            [
                {
                    "id": str(uuid.uuid4()),
                    "broadcast_id": bid,
                    "seq": i,
                    "tenant_id": tenant,
                    "group_id": str(uuid.uuid4()),
                    "channel_id": f"19:c{i}@thread.tacv2",
                    "state": state,
                    "attempts": 1,
                    "last_error_code": code,
                    "created_at": at,
                    "updated_at": at,
                }
                for i, (tenant, state, code) in enumerate(states)
            ],
        )
    return bid


def set_state(ledger: Ledger, bid: str, old: str, new: str) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.broadcast_id == bid, deliveries.c.state == old)
            .values(state=new)
        )


def kinds(ledger: Ledger) -> list[tuple[str, str]]:
    return sorted((e.type, e.subject) for e in ledger.webhooks.recent(100))


def test_events_are_found_once(ledger: Ledger, receiver: Receiver) -> None:
    finder = FindEvents(ledger, endpoints(receiver))
    quiet = add_broadcast(ledger, [(T1, "sent", None)] * 3)
    moving = add_broadcast(
        ledger, [(T1, "sent", None), (T1, "failed", "Forbidden"), (T1, "queued", None)]
    )
    finder.run(now())
    assert kinds(ledger) == [(COMPLETED, quiet)]
    set_state(ledger, moving, "queued", "unknown")
    finder.run(now())
    finder.run(now())  # idempotent
    assert kinds(ledger) == sorted(
        [(COMPLETED, quiet), (COMPLETED, moving), (ATTENTION.value, moving)]
    )
    attention = next(e for e in ledger.webhooks.recent(10) if e.type == ATTENTION)
    assert attention.data["failed"] == 1 and attention.data["unknown"] == 1
    assert {(x["state"], x["error_code"], x["count"]) for x in attention.data["top_errors"]} == {
        ("failed", "Forbidden", 1),
        ("unknown", "unknown", 1),
    }
    # ops wants every event, audit the broadcasts' two: a delivery for each, pending.
    for event in ledger.webhooks.recent(10):
        assert sorted(d.endpoint for d in event.deliveries) == ["audit", "ops"]
        assert all(d.state is WebhookState.PENDING for d in event.deliveries)
    # A new finder (a restarted scheduler) finds nothing new.
    FindEvents(ledger, endpoints(receiver)).run(now())
    assert len(kinds(ledger)) == 3


def test_a_tenant_waiting_for_a_sign_in_is_announced_once_per_episode(
    ledger: Ledger, receiver: Receiver
) -> None:
    finder = FindEvents(ledger, endpoints(receiver))
    bid = add_broadcast(ledger, [(T2, "waiting_auth", None)] * 2 + [(T1, "sent", None)])
    finder.run(now())
    finder.run(now())
    waits = [e for e in ledger.webhooks.recent(10) if e.type == EventType.TENANT_WAITING_AUTH]
    assert len(waits) == 1 and waits[0].data["tenant_id"] == T2 and waits[0].data["waiting"] == 2
    assert [d.endpoint for d in waits[0].deliveries] == ["ops"]  # audit does not want it
    set_state(ledger, bid, "waiting_auth", "queued")  # signed in: the episode ends
    finder.run(now())
    set_state(ledger, bid, "queued", "waiting_auth")  # and a new one begins
    finder.run(now())
    waits = [e for e in ledger.webhooks.recent(10) if e.type == EventType.TENANT_WAITING_AUTH]
    assert len(waits) == 2


def test_a_missed_occurrence_is_announced_once(ledger: Ledger, receiver: Receiver) -> None:
    at = now()
    record = ScheduleRecord(
        "weekly",
        "0 9 * * MON",
        "UTC",
        "<p>hi</p>",
        ContentType.HTML,
        (Target(T1, str(uuid.uuid4()), "19:a@thread.tacv2"),),
        "tests",
        ScheduleState.ACTIVE,
        900,
        at,
        at,
        at,
    )
    ledger.schedules.add(record)
    occurrence = at - timedelta(hours=2)
    ledger.schedules.record("weekly", occurrence, OccurrenceState.MISSED, at, note="down")
    finder = FindEvents(ledger, endpoints(receiver))
    finder.run(now())
    FindEvents(ledger, endpoints(receiver)).run(now())
    missed = [e for e in ledger.webhooks.recent(10) if e.type == EventType.SCHEDULE_MISSED]
    assert len(missed) == 1
    assert missed[0].data == {
        "schedule_id": "weekly",
        "occurrence_at": occurrence.isoformat(),
        "recorded_at": at.isoformat(),
        "note": "down",
    }


# -- sending --------------------------------------------------------------------------------
def announce(ledger: Ledger, receiver: Receiver, subject: str) -> None:
    finder = FindEvents(ledger, endpoints(receiver))
    event = NewEvent(EventType.BROADCAST_COMPLETED, subject, {"broadcast_id": subject})
    assert ledger.webhooks.announce([event], finder.subscribers, now()) == 1


def test_an_endpoint_failing_long_enough_is_paused_until_resumed(
    ledger: Ledger, receiver: Receiver
) -> None:
    hooks = endpoints(receiver)
    policy = RetryPolicy(first=0.01, cap=0.01, pause=PauseRule(3, timedelta(seconds=0.05)))
    announce(ledger, receiver, "b-1")
    announce(ledger, receiver, "b-2")
    sender = SendWebhooks(ledger, hooks, policy, background=False)
    for _ in range(6):  # the receiver is down: 3 failures in a row over 50 ms pause both
        sender.run(now())
        time.sleep(0.03)
    for name in ("ops", "audit"):
        record = ledger.webhooks.endpoint(name)
        assert record is not None and record.paused_at is not None, name
        assert "3 failed attempts in a row" in (record.pause_reason or "")
    made = [a for e in ledger.webhooks.recent(10) for d in e.deliveries for a in d.history]
    assert len(made) == 6 and all(a.outcome == "failed" for a in made)
    receiver.start()
    sender.run(now())
    assert receiver.received == []  # paused: no attempt at all
    assert cli_main_with(ledger, hooks, ["webhooks", "resume", "ops"]) == 0
    sender.run(now())
    assert receiver.by_type("/ops") == {COMPLETED: 2}
    assert receiver.by_type("/audit") == {}  # still paused
    for event in ledger.webhooks.recent(10):
        states = {d.endpoint: d.state for d in event.deliveries}
        assert states == {"ops": WebhookState.DELIVERED, "audit": WebhookState.PENDING}


def cli_main_with(ledger: Ledger, hooks: tuple[WebhookEndpoint, ...], argv: list[str]) -> int:
    """The CLI on this ledger with these endpoints (their settings, as the environment)."""
    mp = pytest.MonkeyPatch()
    raw = [{"name": e.name, "url": e.url, "secret": OPS_SECRET, "events": "*"} for e in hooks]
    mp.setenv("THREADCAST_DATABASE_URL", ledger.engine.url.render_as_string(hide_password=False))
    mp.setenv("THREADCAST_WEBHOOKS", json.dumps(raw))
    try:
        return cli_main(argv)
    finally:
        mp.undo()


def test_a_delivery_is_given_up_after_its_attempts(ledger: Ledger, receiver: Receiver) -> None:
    policy = RetryPolicy(first=0.01, cap=0.01, retry_for=0.025, pause=PauseRule(99, timedelta()))
    assert policy.max_attempts == 3
    announce(ledger, receiver, "b-given-up")
    receiver.status = 500
    receiver.start()
    sender = SendWebhooks(ledger, endpoints(receiver)[:1], policy, background=False)
    for _ in range(5):
        sender.run(now())
        time.sleep(0.03)
    [event] = ledger.webhooks.recent(1)
    ops = next(d for d in event.deliveries if d.endpoint == "ops")
    assert ops.state is WebhookState.FAILED and ops.attempts == 3
    assert [a.outcome for a in reversed(ops.history)] == ["failed", "failed", "given_up"]
    assert ops.last_status == 500 and len(receiver.events("/ops")) == 3


def test_a_sender_that_died_before_recording_sends_again_with_the_same_id(
    ledger: Ledger, receiver: Receiver
) -> None:
    announce(ledger, receiver, "b-crash")
    receiver.start()
    hooks = endpoints(receiver)[:1]
    dying = SendWebhooks(ledger, hooks, FAST, background=False)

    def die(*_args: object) -> bool:
        raise SystemExit("killed between the POST and its record")

    ledger.webhooks.finish = die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        dying.run(now())
    restarted = Ledger.open(ledger.engine.url.render_as_string(hide_password=False))
    try:
        SendWebhooks(restarted, hooks, FAST, background=False).run(now())
        SendWebhooks(restarted, hooks, FAST, background=False).run(now())  # nothing more
        [event] = restarted.webhooks.recent(1)
    finally:
        restarted.close()
    got = receiver.events("/ops")
    assert [r.webhook_id for r in got] == [event.id, event.id]  # at least once, same id
    assert got[0].body == got[1].body
    states = {d.endpoint: d.state for d in event.deliveries}
    assert states == {"ops": WebhookState.DELIVERED, "audit": WebhookState.PENDING}


def test_a_slow_endpoint_holds_up_neither_the_loop_nor_another_endpoint(
    ledger: Ledger, receiver: Receiver
) -> None:
    slow = Receiver({"/ops": OPS_SECRET}, delay=1.5)
    slow.start()
    try:
        hooks = parse_webhooks(
            json.dumps(
                [
                    {"name": "slow", "url": slow.url("/ops"), "secret": OPS_SECRET, "events": "*"},
                    {"name": "fast", "url": receiver.url("/audit"), "secret": AUDIT_SECRET}
                    | {"events": "*"},
                ]
            )
        )
        finder = FindEvents(ledger, hooks)
        event = NewEvent(EventType.BROADCAST_COMPLETED, "b-slow", {"broadcast_id": "b-slow"})
        ledger.webhooks.announce([event], finder.subscribers, now())
        receiver.start()
        sender = SendWebhooks(ledger, hooks, FAST)  # background: a thread per endpoint
        sender.run(now())
        sender.run(now())  # the slow one is still posting: not started twice
        wait_for(lambda: len(receiver.events("/audit")) == 1, 5, "the fast endpoint")
        assert slow.received == [] and sender.busy()
        sender.join(10)
        assert len(slow.events("/ops")) == 1
    finally:
        slow.stop()


# -- end to end -----------------------------------------------------------------------------
def accept(stack: Stack, targets: list[Target]) -> str:
    broadcast = Broadcast(
        f"wh-{uuid.uuid4()}", f"<p>{uuid.uuid4()}</p>", ContentType.HTML, tuple(targets), "tests"
    )
    publisher = Publisher(stack.settings.redis_url)
    try:
        Intake(stack.ledger, publisher).accept(broadcast, broadcast.targets, now())
    finally:
        publisher.close()
    return broadcast.id


@pytest.mark.backends("postgresql")  # the event finder's SQL runs on both in the tests above
def test_a_broadcast_with_failures_is_announced_once_per_endpoint_despite_a_late_receiver(
    stack: Stack, receiver: Receiver
) -> None:
    hooks = endpoints(receiver)
    finder = FindEvents(stack.ledger, hooks)
    finder.run(now())  # as the scheduler does at its start: watching from now on
    outside = str(uuid.uuid4())
    stack.sim.membership(stack.tenants[0], outside, False)  # its channels answer 403
    targets = [
        Target(
            stack.tenants[0],
            outside if i % 8 == 0 else str(uuid.uuid4()),
            f"19:{uuid.uuid4().hex}@thread.tacv2",
        )
        for i in range(32)
    ]
    bid = accept(stack, targets)
    sender = SendWebhooks(stack.ledger, hooks, FAST, background=False)
    began = time.monotonic()

    def settled() -> bool:
        finder.run(now())
        sender.run(now())
        counts = stack.ledger.broadcasts.counts(bid)
        return counts["sent"] + counts["failed"] == 32

    wait_for(settled, 60, "the broadcast to settle")
    finder.run(now())  # its events exist now, and the receiver is still down
    sender.run(now())
    receiver_up_at = began + 3.0  # the receiver is down for the first 3 s
    while time.monotonic() < receiver_up_at:
        finder.run(now())
        sender.run(now())
        time.sleep(0.2)
    receiver.start()

    def arrived() -> bool:
        finder.run(now())
        sender.run(now())
        return all(len(receiver.events(p)) >= 2 for p in ("/ops", "/audit"))

    wait_for(arrived, 30, "both events at both endpoints")
    for _ in range(5):  # nothing more comes, however often the jobs run
        finder.run(now())
        sender.run(now())
    assert receiver.refused == []
    for path in ("/ops", "/audit"):
        assert receiver.by_type(path) == {COMPLETED: 1, ATTENTION.value: 1}, path
        completed = receiver.events(path, COMPLETED)[0].event
        assert completed["data"]["broadcast_id"] == bid
        assert completed["data"]["counts"] == {
            "sent": 28,
            "failed": 4,
            "unknown": 0,
            "cancelled": 0,
        }
        attention = receiver.events(path, ATTENTION.value)[0].event["data"]
        assert attention["failed"] == 4 and attention["top_errors"][0]["count"] == 4
    events = stack.ledger.webhooks.recent(10)
    assert {e.type for e in events} == {COMPLETED, ATTENTION.value}
    for event in events:
        for delivery in event.deliveries:
            assert delivery.state is WebhookState.DELIVERED
            assert delivery.attempts >= 2  # failed while the receiver was down, then delivered
            assert delivery.history[0].outcome == "delivered"  # the latest first
    check_the_api(stack, receiver)


def check_the_api(stack: Stack, receiver: Receiver) -> None:
    raw = [
        {"name": e.name, "url": e.url + "?token=t0p", "secret": OPS_SECRET, "events": "*"}
        for e in endpoints(receiver)
    ]
    ops_key, other_key = "ops-" + "k" * 28, "alpha-" + "a" * 26
    env = stack.env | {
        "THREADCAST_API_KEYS": f"operator@ops:{ops_key},alpha:{other_key}",
        "THREADCAST_WEBHOOKS": json.dumps(raw),
    }
    server = start_api(settings_from(env))
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            other = {"Authorization": f"Bearer {other_key}"}
            refused = http.get("/v1/webhooks", headers=other)
            assert refused.status_code == 403
            assert "operator key" in refused.json()["error"]["message"]
            assert http.post("/v1/webhooks/ops/resume", headers=other).status_code == 403
            ops = {"Authorization": f"Bearer {ops_key}"}
            listed = http.get("/v1/webhooks", headers=ops)
            assert listed.status_code == 200
            assert OPS_SECRET not in listed.text and "t0p" not in listed.text
            rows = {e["name"]: e for e in listed.json()["endpoints"]}
            assert rows["ops"]["state"] == "active" and rows["ops"]["delivered"] == 2
            assert rows["ops"]["pending"] == 0 and rows["audit"]["delivered"] == 2
            events = http.get("/v1/webhooks/events", params={"limit": 5}, headers=ops).json()
            assert len(events["events"]) == 2
            assert all(d["history"] for e in events["events"] for d in e["deliveries"])
            assert http.post("/v1/webhooks/nope/resume", headers=ops).status_code == 404
            resumed = http.post("/v1/webhooks/ops/resume", headers=ops)
            assert resumed.json() == {"name": "ops", "was_paused": False, "pending": 0}
    finally:
        server.stop()
