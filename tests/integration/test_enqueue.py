"""Sending a broadcast: validated, committed to the ledger, then put in the gate (issue 8).

The producer writes deliveries below SQLAlchemy's per-row handling (COPY on PostgreSQL, the
driver's executemany on SQLite), publishes a new broadcast from what it just wrote and puts
deliveries in the gate with a few multi-value commands per chunk; these tests hold that to
what the plain paths did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select

from producer import Producer
from tests.integration.gates import Gate
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import keys
from threadcast.errors import ValidationError
from threadcast.ledger import DeliveryState, Ledger
from threadcast.ledger.schema import broadcasts, deliveries
from threadcast.settings import load_settings

NOW = 1_800_000_000.25


def guid() -> str:
    return str(uuid.uuid4())


def redis_state(client: redis.Redis) -> dict[bytes, Any]:
    state: dict[bytes, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"list":
            state[key] = client.lrange(key, 0, -1)
        elif kind == b"zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            state[key] = client.hgetall(key)
        else:
            state[key] = client.get(key)
    return state


def one_command_per_delivery(client: redis.Redis, messages: list[DeliveryMessage]) -> None:
    """What Gate.enqueue did before it grouped its commands."""
    pipe = client.pipeline(transaction=True)
    seen: set[str] = set()
    for m in messages:
        if m.delivery_id in seen:  # one entry per delivery (issue 14)
            continue
        seen.add(m.delivery_id)
        pipe.rpush(keys.queue(m.tenant, m.group), m.entry(NOW))
        pipe.zadd(keys.teams(m.tenant), {m.group: NOW}, nx=True)
        pipe.zadd(keys.TENANTS, {m.tenant: NOW}, nx=True)
        pipe.hset(keys.KNOWN, m.delivery_id, "p")
    pipe.lpush(keys.WAKE, "1")
    pipe.ltrim(keys.WAKE, 0, 0)
    pipe.execute()


def test_gate_enqueue_leaves_what_one_command_per_delivery_left(
    clean_redis: redis.Redis,
) -> None:
    tenants = [guid() for _ in range(3)]
    teams = {t: [guid() for _ in range(5)] for t in tenants}
    messages = [
        DeliveryMessage(
            guid(), "b", tenants[i % 3], teams[tenants[i % 3]][i % 5], f"19:c{i}@thread.tacv2"
        )
        for i in range(25_000)
    ]
    messages.append(messages[7])  # a delivery published twice is known once, queued once
    # Scores already present stay (NX): an earlier tenant and team.
    clean_redis.zadd(keys.TENANTS, {tenants[0]: 5.0})
    clean_redis.zadd(keys.teams(tenants[1]), {teams[tenants[1]][0]: 6.0})
    before = redis_state(clean_redis)
    one_command_per_delivery(clean_redis, messages)
    expected = redis_state(clean_redis)
    clean_redis.flushdb()
    for key, value in before.items():
        clean_redis.zadd(key, dict(value))
    assert Gate(clean_redis, clock=lambda: NOW).enqueue(iter(messages)) == len(messages) - 1
    assert redis_state(clean_redis) == expected


@pytest.fixture
def producer(database_url: str, redis_url: str, clean_redis: redis.Redis) -> Iterator[Producer]:
    with Producer(load_settings(redis_url=redis_url, database_url=database_url)) as made:
        yield made


def targets(tenants: list[str], n: int) -> list[dict[str, str]]:
    return [
        {
            "tenant": tenants[i % len(tenants)].upper(),
            "group": str(uuid.UUID(int=i % 13)),
            "channel": f"19:c{i}@thread.tacv2",
        }
        for i in range(n)
    ]


def signed_in(ledger: Ledger, count: int) -> list[str]:
    tenants = [guid() for _ in range(count)]
    for tenant in tenants:
        ledger.token_caches.save(tenant, "ciphertext", datetime.now(UTC))
    return tenants


def test_a_send_writes_then_publishes_every_distinct_target_in_order(
    producer: Producer, clean_redis: redis.Redis
) -> None:
    tenants = signed_in(producer.ledger, 3)
    work = targets(tenants, 12_000)
    work += work[:500]  # duplicates collapse
    before = datetime.now(UTC)
    result = producer.send("<p>hi</p>", work, content_type="html", broadcast_id="big-1")
    assert (result.created, result.deliveries, result.published) == (True, 12_000, 12_000)
    with producer.ledger.engine.connect() as conn:
        rows = conn.execute(
            select(deliveries)
            .where(deliveries.c.broadcast_id == "big-1")
            .order_by(deliveries.c.seq)
        ).all()
        created = conn.execute(select(broadcasts.c.created_at)).scalar_one()
        # Stored exactly as SQLAlchemy stores the broadcast's own timestamp.
        raw = conn.exec_driver_sql(
            "SELECT b.created_at, d.created_at, d.updated_at FROM broadcasts b "
            "JOIN deliveries d ON d.broadcast_id = b.id"
        ).all()
    assert {(a == b == c) for a, b, c in raw} == {True}
    assert before <= created <= datetime.now(UTC)
    assert [r.seq for r in rows] == list(range(12_000))
    assert [(r.tenant_id, r.group_id, r.channel_id) for r in rows] == [
        (t["tenant"].lower(), t["group"], t["channel"]) for t in work[:12_000]
    ]
    assert {
        (r.state, r.attempts, r.attempt_base, r.created_at, r.updated_at, r.sent_at) for r in rows
    } == {("queued", 0, 0, created, created, None)}
    known = clean_redis.hgetall(keys.KNOWN)
    assert known == {r.id.encode(): b"p" for r in rows}
    queued = [
        DeliveryMessage.from_entry(e).delivery_id
        for e in clean_redis.lrange(keys.queue(rows[0].tenant_id, rows[0].group_id), 0, -1)
    ]
    assert queued == [
        r.id for r in rows if (r.tenant_id, r.group_id) == (rows[0].tenant_id, rows[0].group_id)
    ]

    # The same broadcast again writes nothing and re-publishes what is still queued.
    producer.ledger.broadcasts.cancel("big-1", datetime.now(UTC))
    with producer.ledger.engine.begin() as conn:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.seq < 100)
            .values(state=DeliveryState.QUEUED.value)
        )
    again = producer.send("<p>hi</p>", work, content_type="html", broadcast_id="big-1")
    # The gate still holds each of them: one entry per delivery, nothing goes in twice
    # (issue 14: each copy cost a permit and a quota count).
    assert (again.created, again.deliveries, again.published) == (False, 12_000, 0)
    clean_redis.flushdb()  # the gate lost them: a re-send puts the queued ones back
    again = producer.send("<p>hi</p>", work, content_type="html", broadcast_id="big-1")
    assert (again.created, again.deliveries, again.published) == (False, 12_000, 100)
    with pytest.raises(ValidationError, match=r"^broadcast_id: .*different broadcast"):
        producer.send("<p>other</p>", work, content_type="html", broadcast_id="big-1")


def test_a_bad_target_anywhere_writes_nothing(producer: Producer, clean_redis: redis.Redis) -> None:
    tenants = signed_in(producer.ledger, 2)
    work = targets(tenants, 5000)
    work[4321] = dict(work[4321], channel="19:bad/../x@thread.tacv2")
    with pytest.raises(ValidationError, match=r"^targets\[4321\]\.channel: "):
        producer.send("<p>hi</p>", work, content_type="html")
    work[4321] = dict(work[4321], channel="19:ok@thread.tacv2", tenant=guid())  # not signed in
    with pytest.raises(ValidationError, match=r"^targets\[4321\]\.tenant: .*never signed in"):
        producer.send("<p>hi</p>", work, content_type="html")
    with producer.ledger.engine.connect() as conn:
        assert conn.execute(select(deliveries.c.id)).first() is None
        assert conn.execute(select(broadcasts.c.id)).first() is None
    assert clean_redis.keys("*") == []


def test_a_scheduled_send_publishes_nothing(producer: Producer, clean_redis: redis.Redis) -> None:
    tenants = signed_in(producer.ledger, 1)
    later = datetime.now(UTC) + timedelta(hours=1)
    result = producer.send("<p>hi</p>", targets(tenants, 50), send_at=later)
    assert (result.created, result.scheduled, result.published) == (True, True, 0)
    assert producer.ledger.broadcasts.counts(result.broadcast_id)["scheduled"] == 50
    assert clean_redis.keys("*") == []


def test_a_refused_delivery_row_is_sqlalchemys_integrity_error(database_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from threadcast.contract import Broadcast, ContentType, Target

    ledger = Ledger.open(database_url)
    try:
        target = Target(guid(), guid(), "19:c@thread.tacv2")
        b = Broadcast("dup", "x", ContentType.TEXT, (target,))
        batch = b.deliveries()
        with pytest.raises(IntegrityError):
            ledger.broadcasts.add(b, batch * 2, datetime.now(UTC))  # one id twice
        with ledger.engine.connect() as conn:  # rolled back: nothing of it stayed
            assert conn.execute(select(broadcasts.c.id)).first() is None
        assert ledger.broadcasts.add(b, batch, datetime.now(UTC))
    finally:
        ledger.close()
