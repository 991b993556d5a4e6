"""Message parts and personal text in the ledger on every backend: migration v8 keeps an
existing v7 ledger's data, content and parts are stored once per broadcast, variables per
delivery (personal broadcasts only), schedules keep parts, personal and targets' variables,
and a re-send under the same id is judged with its parts and variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.integration import books
from threadcast import ids
from threadcast.contract import Broadcast, ContentType, Delivery, Target
from threadcast.errors import ValidationError
from threadcast.ledger import Claim, Ledger, StoredMessage, migrations
from threadcast.ledger.engine import make_engine
from threadcast.ledger.schedules import ScheduleRecord, ScheduleState
from threadcast.message import Card, Image, Importance, Mention, MessageParts

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
CARD = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "Image", "url": "image:logo"}]}


def parts() -> MessageParts:
    return MessageParts(
        subject="Road works",
        importance=Importance.URGENT,
        cards=(Card.parse("cards[0]", "card1", CARD),),
        images=(Image.parse("images[0]", "logo", PNG),),
        mentions=(Mention.parse("mentions[0]", {"id": 0, "text": "General", "kind": "channel"}),),
    )


RICH = '<p>Read this, <at id="0">General</at></p><attachment id="card1"></attachment>'


def personal(bid: str, names: list[str]) -> Broadcast:
    targets = tuple(
        Target(T, G, f"19:p{i}@thread.tacv2", {"team_name": name}) for i, name in enumerate(names)
    )
    return Broadcast(bid, "<p>Hi {{ team_name }}</p>", ContentType.HTML, targets, personal=True)


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


def test_v8_keeps_a_v7_ledgers_broadcasts_deliveries_and_schedules(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        assert migrations.upgrade(conn, target=7) == [1, 2, 3, 4, 5, 6, 7]
    engine.dispose()
    old = Ledger.open(database_url, migrate=False)  # a v7 ledger, written by v7 code
    try:
        plain = Broadcast(
            "old", "<p>kept</p>", ContentType.HTML, (Target(T, G, "19:o@thread.tacv2"),)
        )
        with old.engine.begin() as conn:
            # What v7's BroadcastBook wrote (the columns it knew), and a v7 schedule.
            conn.execute(
                text(
                    "INSERT INTO broadcasts (id, fingerprint, content, content_type, source, "
                    "target_count, created_at) VALUES ('old', 'f', '<p>kept</p>', 'html', "
                    "'v7', 1, :now)"
                ),
                {"now": NOW.replace(tzinfo=None)},
            )
            conn.execute(
                text(
                    "INSERT INTO deliveries (id, broadcast_id, seq, tenant_id, group_id, "
                    "channel_id, state, attempts, created_at, updated_at) VALUES "
                    "(:id, 'old', 0, :t, :g, '19:o@thread.tacv2', 'queued', 0, :now, :now)"
                ),
                {"id": plain.deliveries()[0].id, "t": T, "g": G, "now": NOW.replace(tzinfo=None)},
            )
            conn.execute(
                text(
                    "INSERT INTO schedules (id, cron, timezone, content, content_type, targets, "
                    "target_count, source, state, grace_seconds, checked_through, created_at, "
                    "updated_at) VALUES ('weekly', '0 9 * * MON', 'UTC', '<p>w</p>', 'html', "
                    ":targets, 1, 'v7', 'active', 900, :now, :now, :now)"
                ),
                {
                    "targets": json.dumps(
                        [{"channel": "19:o@thread.tacv2", "group": G, "tenant": T}]
                    ),
                    "now": NOW.replace(tzinfo=None),
                },
            )
    finally:
        old.close()

    ledger = Ledger.open(database_url)
    try:
        with ledger.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.HEAD >= 8
        info = ledger.broadcasts.info("old")
        assert (info.source, info.target_count) == ("v7", 1)
        assert (info.parts, info.personal) == (MessageParts(), False)
        assert ledger.deliveries.message("old") == StoredMessage(
            "<p>kept</p>", ContentType.HTML, None, MessageParts(), False
        )
        claim = books.claim(ledger, plain.deliveries()[0].id, "w", "c1", LEASE, NOW)
        assert isinstance(claim, Claim) and claim.variables is None
        kept = ledger.schedules.get("weekly")
        assert (kept.content, kept.source, kept.parts, kept.personal) == (
            "<p>w</p>",
            "v7",
            MessageParts(),
            False,
        )
        assert kept.targets == (Target(T, G, "19:o@thread.tacv2"),)
        assert ledger.migrate() == []  # idempotent
    finally:
        ledger.close()


def test_content_and_parts_are_stored_once_and_variables_per_delivery(ledger: Ledger) -> None:
    targets = tuple(Target(T, G, f"19:r{i}@thread.tacv2") for i in range(3))
    rich = Broadcast("rich", RICH, ContentType.HTML, targets, parts=parts())
    assert ledger.broadcasts.add(rich, rich.deliveries(), NOW)
    mine = personal("mine", ["Eng", "<b>&", "Sales"])
    assert ledger.broadcasts.add(mine, mine.deliveries(), NOW)

    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, content, parts, personal FROM broadcasts ORDER BY id")
        ).all()
        variables = {
            r[0]: r[1] for r in conn.execute(text("SELECT channel_id, variables FROM deliveries"))
        }
    assert [(r.id, r.content, bool(r.personal)) for r in rows] == [
        ("mine", "<p>Hi {{ team_name }}</p>", True),
        ("rich", RICH, False),
    ]
    assert rows[1].parts == parts().to_json() and rows[0].parts is None
    assert {c: v for c, v in variables.items() if c.startswith("19:r")} == {
        f"19:r{i}@thread.tacv2": None for i in range(3)
    }
    assert {c: json.loads(v) for c, v in variables.items() if c.startswith("19:p")} == {
        "19:p0@thread.tacv2": {"team_name": "Eng"},
        "19:p1@thread.tacv2": {"team_name": "<b>&"},
        "19:p2@thread.tacv2": {"team_name": "Sales"},
    }

    stored = ledger.deliveries.message("rich")
    assert stored is not None and stored.parts == parts() and not stored.personal
    assert ledger.broadcasts.info("mine").personal
    [first, second] = ledger.deliveries.claim_many(
        [(mine.deliveries()[1].id, "c1"), (rich.deliveries()[0].id, "c2")],
        "w",
        LEASE,
        NOW,
        ["chatthreads", "channel-messages"],
    )
    assert isinstance(first, Claim) and isinstance(second, Claim)
    assert (first.variables, first.endpoint) == ({"team_name": "<b>&"}, "chatthreads")
    assert (second.variables, second.endpoint) == (None, "channel-messages")
    with ledger.engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT delivery_id, endpoint FROM attempts ORDER BY endpoint")
        ).all()
    assert [tuple(r) for r in recorded] == [
        (rich.deliveries()[0].id, "channel-messages"),
        (mine.deliveries()[1].id, "chatthreads"),
    ]


def test_a_resend_is_judged_with_its_parts_and_variables(ledger: Ledger) -> None:
    mine = personal("again", ["Eng", "Sales"])
    assert ledger.broadcasts.add(mine, mine.deliveries(), NOW)
    assert not ledger.broadcasts.add(mine, mine.deliveries(), NOW)  # the same: nothing new
    other = personal("again", ["Eng", "Ops"])
    with pytest.raises(ValidationError, match="different broadcast"):
        ledger.broadcasts.add(other, other.deliveries(), NOW)

    targets = (Target(T, G, "19:x@thread.tacv2"),)
    rich = Broadcast("parted", RICH, ContentType.HTML, targets, parts=parts())
    assert ledger.broadcasts.add(rich, rich.deliveries(), NOW)
    assert not ledger.broadcasts.add(rich, rich.deliveries(), NOW)
    louder = MessageParts(**{**parts().__dict__, "importance": Importance.HIGH})
    changed = Broadcast("parted", RICH, ContentType.HTML, targets, parts=louder)
    with pytest.raises(ValidationError, match="different broadcast"):
        ledger.broadcasts.add(changed, changed.deliveries(), NOW)


def test_a_personal_broadcast_streams_its_variables_chunk_after_chunk(ledger: Ledger) -> None:
    # More rows than one insert chunk (10,000), from a generator: every chunk keeps its rows'
    # variables.
    n = 10_050
    first = Target(T, G, "19:s0@thread.tacv2", {"team_name": "team 0"})
    head = Broadcast("stream", "Hi {{ team_name }}", ContentType.TEXT, (first,), personal=True)
    delivery_id = ids.delivery_ids("stream")

    def batch() -> Iterator[Delivery]:
        for i in range(n):
            target = Target(T, G, f"19:s{i}@thread.tacv2", {"team_name": f"team {i}"})
            yield Delivery(delivery_id(T, G, target.channel), "stream", target)

    assert ledger.broadcasts.record(head, batch(), NOW).deliveries == n
    with ledger.engine.connect() as conn:
        query = text("SELECT channel_id, variables FROM deliveries WHERE broadcast_id = 'stream'")
        found = {r[0]: r[1] for r in conn.execute(query)}
    assert len(found) == n
    assert all(
        json.loads(found[f"19:s{i}@thread.tacv2"]) == {"team_name": f"team {i}"} for i in range(n)
    )
    assert not ledger.broadcasts.add(head, batch(), NOW)  # the same variables: the same


def test_schedules_keep_parts_personal_and_each_targets_variables(ledger: Ledger) -> None:
    targets = (
        Target(T, G, "19:a@thread.tacv2", {"team_name": "Eng", "floor": "3"}),
        Target(T, G, "19:b@thread.tacv2"),
    )
    record = ScheduleRecord(
        "weekly",
        "0 9 * * MON",
        "Europe/Berlin",
        RICH,
        ContentType.HTML,
        targets,
        "test",
        ScheduleState.ACTIVE,
        900,
        NOW,
        NOW,
        NOW,
        parts(),
        True,
    )
    ledger.schedules.add(record)
    kept = ledger.schedules.get("weekly")
    assert kept == record
    assert [t.variables for t in kept.targets] == [{"floor": "3", "team_name": "Eng"}, None]
    given = [getattr(record, f.name) for f in fields(record)][:12]
    plain = ScheduleRecord(*given)  # made without the new fields: their defaults
    ledger.schedules.add(replace(plain, id="plain"))
    assert ledger.schedules.get("plain").parts == MessageParts()
    assert ledger.schedules.get("plain").personal is False
