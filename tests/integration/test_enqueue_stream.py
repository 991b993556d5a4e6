"""Big broadcasts stream (issue 12 item 6): targets are read, validated and committed a chunk
at a time, put in the gate only after the commit, and a bad one anywhere writes nothing.
On each ledger backend."""

from __future__ import annotations

import gc
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from producer import Producer
from producer.cli import main
from producer.targets import stream_targets
from tests.integration.gates import Gate
from threadcast.contract import DeliveryMessage, Target
from threadcast.dispatch import Entrance, keys
from threadcast.errors import BrokerError, ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.schema import broadcasts, deliveries
from threadcast.lifecycle import Publisher
from threadcast.lifecycle.sweeps import OrphanSweep
from threadcast.settings import load_settings

ROWS = 50_000


@pytest.fixture
def producer(database_url: str, redis_url: str, clean_redis: redis.Redis) -> Iterator[Producer]:
    with Producer(load_settings(redis_url=redis_url, database_url=database_url)) as made:
        yield made


def signed_in(ledger: Ledger, count: int) -> list[str]:
    tenants = [str(uuid.uuid4()) for _ in range(count)]
    for tenant in tenants:
        ledger.token_caches.save(tenant, "ciphertext", datetime.now(UTC))
    return tenants


def rows(tenants: list[str], n: int) -> list[str]:
    return [
        f"{tenants[i % len(tenants)]},{uuid.UUID(int=i % 13)},19:c{i}@thread.tacv2"
        for i in range(n)
    ]


def write_file(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("tenant,group,channel\n" + "\n".join(lines) + "\n")
    return path


def ledger_rows(ledger: Ledger) -> tuple[int, int, int | None, int | None]:
    """Broadcasts; deliveries with their lowest and highest seq."""
    with ledger.engine.connect() as conn:
        made = conn.execute(select(func.count()).select_from(broadcasts)).scalar_one()
        count, low, high = conn.execute(
            select(func.count(), func.min(deliveries.c.seq), func.max(deliveries.c.seq))
        ).one()
    return made, count, low, high


def test_a_targets_file_streams_into_the_ledger_and_the_gate(
    producer: Producer, clean_redis: redis.Redis, tmp_path: Path
) -> None:
    tenants = signed_in(producer.ledger, 3)
    lines = rows(tenants, ROWS)
    lines[1000:1000] = [*lines[:700], ""]  # duplicates (they collapse) and a blank line
    path = write_file(tmp_path / "t.csv", lines)

    result = producer.send("<p>big</p>", stream_targets(path), broadcast_id="file-1")
    assert (result.created, result.deliveries, result.published) == (True, ROWS, ROWS)
    assert ledger_rows(producer.ledger) == (1, ROWS, 0, ROWS - 1)
    assert producer.ledger.broadcasts.info("file-1").target_count == ROWS
    assert clean_redis.hlen(keys.KNOWN) == ROWS
    tenant, group = tenants[0], str(uuid.UUID(int=0))
    queued = clean_redis.lrange(keys.queue(tenant, group), 0, -1)
    assert [DeliveryMessage.from_entry(e).channel for e in queued] == [
        f"19:c{i}@thread.tacv2"
        for i in range(0, ROWS, 39)  # 3 tenants x 13 teams
    ]

    # The same broadcast again, from the file or as a list of dicts: nothing new, and what
    # is still queued (all of it here) published again -- each already in the gate is not
    # put in twice (issue 14), so what the gate lost goes back; other content: refused.
    again = producer.send("<p>big</p>", stream_targets(path), broadcast_id="file-1")
    assert (again.created, again.deliveries, again.published) == (False, ROWS, 0)
    clean_redis.flushdb()
    again = producer.send("<p>big</p>", stream_targets(path), broadcast_id="file-1")
    assert (again.created, again.deliveries, again.published) == (False, ROWS, ROWS)
    as_dicts = [
        dict(zip(("tenant", "group", "channel"), line.split(","), strict=True))
        for line in lines
        if line
    ]
    assert producer.send("<p>big</p>", as_dicts, broadcast_id="file-1").created is False
    with pytest.raises(ValidationError, match=r"^broadcast_id: .*different broadcast"):
        producer.send("<p>other</p>", stream_targets(path), broadcast_id="file-1")
    assert ledger_rows(producer.ledger) == (1, ROWS, 0, ROWS - 1)


@pytest.mark.parametrize(
    ("last", "message"),
    [
        ("{tenant},{group},19:bad/../x@thread.tacv2", r"t\.csv line 50002\.channel: must be"),
        ("{tenant},{group}", r"t\.csv line 50002: must have exactly 3 columns"),
        ("{stranger},{group},19:x@thread.tacv2", r"targets\[50000\]\.tenant: has never signed"),
    ],
)
def test_a_bad_row_at_the_end_of_a_big_file_writes_nothing(
    database_url: str,
    redis_url: str,
    clean_redis: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    last: str,
    message: str,
) -> None:
    ledger = Ledger.open(database_url)
    try:
        tenants = signed_in(ledger, 2)
        bad = last.format(tenant=tenants[0], group=uuid.uuid4(), stranger=uuid.uuid4())
        path = write_file(tmp_path / "t.csv", [*rows(tenants, ROWS), bad])
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("THREADCAST_DATABASE_URL", database_url)
        monkeypatch.setenv("THREADCAST_REDIS_URL", redis_url)
        assert main(["send", "--targets", str(path), "--text", "hi"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert re.search(message, err), err
        assert ledger_rows(ledger) == (0, 0, None, None)
        assert clean_redis.keys("*") == []
    finally:
        ledger.close()


def test_a_failed_send_leaves_the_ledger_as_it_was_for_the_next(
    producer: Producer, clean_redis: redis.Redis, tmp_path: Path
) -> None:
    """The failure comes while rows are being moved (SQLite: on the mover thread's chunk)."""
    tenants = signed_in(producer.ledger, 2)
    good = rows(tenants, 25_000)
    path = write_file(tmp_path / "t.csv", [*good, "x,y,z"])
    for _ in range(3):  # every pooled connection has met a failure
        with pytest.raises(ValidationError, match="line 25002"):
            producer.send("<p>hi</p>", stream_targets(path))
    assert ledger_rows(producer.ledger) == (0, 0, None, None)
    for n in range(3):  # and then sends as if nothing happened
        path = write_file(tmp_path / "t.csv", good)
        assert producer.send(f"<p>{n}</p>", stream_targets(path)).deliveries == 25_000
    assert ledger_rows(producer.ledger) == (3, 75_000, 0, 24_999)


def test_a_generator_of_targets_is_read_as_it_is_written(
    producer: Producer, clean_redis: redis.Redis
) -> None:
    tenants = signed_in(producer.ledger, 2)
    alive: list[int] = []

    def generate() -> Iterator[dict[str, str]]:
        for i, line in enumerate(rows(tenants, 30_000)):
            if i == 25_000:  # what is still in memory of the 25,000 targets read so far
                alive.append(sum(1 for o in gc.get_objects() if type(o) is Target))
            tenant, group, channel = line.split(",")
            yield {"tenant": tenant, "group": group, "channel": channel}

    result = producer.send("<p>gen</p>", generate())
    assert (result.created, result.deliveries, result.published) == (True, 30_000, 30_000)
    assert alive[0] < 100, alive  # a list-based send holds all 25,000 here


def test_a_small_broadcast_is_published_from_memory_a_big_one_read_back(
    producer: Producer, clean_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = signed_in(producer.ledger, 2)
    read_back: list[str] = []
    real = producer.ledger.broadcasts.queued_messages

    def queued_messages(broadcast_id: str) -> Iterator[DeliveryMessage]:
        read_back.append(broadcast_id)
        return real(broadcast_id)

    monkeypatch.setattr(producer.ledger.broadcasts, "queued_messages", queued_messages)
    as_dicts = [
        dict(zip(("tenant", "group", "channel"), x.split(","), strict=True))
        for x in rows(tenants, 10_001)
    ]
    small = producer.send("<p>small</p>", as_dicts[:10_000], broadcast_id="small")
    big = producer.send("<p>big</p>", as_dicts, broadcast_id="big")
    assert (small.published, big.published) == (10_000, 10_001)
    assert read_back == ["big"]
    assert clean_redis.hlen(keys.KNOWN) == 20_001


def test_a_crash_between_commit_and_gate_is_put_right_by_the_orphan_sweep(
    producer: Producer, clean_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = signed_in(producer.ledger, 2)
    real_enqueue = Entrance.enqueue

    def dies_half_way(
        gate: Entrance, messages: Iterable[DeliveryMessage], *, replace: bool = False
    ) -> int:
        real_enqueue(gate, islice(messages, 1000), replace=replace)
        raise BrokerError("Redis went away")

    lines = rows(tenants, 20_000)
    targets = [dict(zip(("tenant", "group", "channel"), x.split(","), strict=True)) for x in lines]
    with monkeypatch.context() as patched:
        patched.setattr(Entrance, "enqueue", dies_half_way)
        with pytest.raises(BrokerError, match="deliveries are safe in the ledger"):
            producer.send("<p>crash</p>", targets, broadcast_id="crash-1")
    assert producer.ledger.broadcasts.counts("crash-1")["queued"] == 20_000
    assert clean_redis.hlen(keys.KNOWN) == 1000

    sweep = OrphanSweep(producer.ledger, Gate(clean_redis), grace=60)
    sweep.run(datetime.now(UTC))  # too young: they may still be on their way into Redis
    assert sweep.requeued == 0
    sweep.run(datetime.now(UTC) + timedelta(seconds=61))
    assert sweep.requeued == 19_000
    assert clean_redis.hlen(keys.KNOWN) == 20_000


def test_the_cli_sends_without_the_cyclic_collector_then_turns_it_back_on(
    database_url: str,
    redis_url: str,
    clean_redis: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ledger = Ledger.open(database_url)
    tenants = signed_in(ledger, 1)
    ledger.close()
    collecting: list[bool] = []
    real_send = Producer.send

    def send(self: Producer, *args: object, **kwargs: object) -> object:
        collecting.append(gc.isenabled())
        return real_send(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Producer, "send", send)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THREADCAST_DATABASE_URL", database_url)
    monkeypatch.setenv("THREADCAST_REDIS_URL", redis_url)
    path = write_file(tmp_path / "t.csv", rows(tenants, 10))
    assert main(["send", "--targets", str(path), "--text", "hi"]) == 0
    assert "recorded 10 deliveries; published 10" in capsys.readouterr().out
    assert collecting == [False]
    assert gc.isenabled()


def message(i: int) -> DeliveryMessage:
    return DeliveryMessage(
        str(uuid.UUID(int=i)),
        "b",
        str(uuid.UUID(int=7)),
        str(uuid.UUID(int=i % 3)),
        f"19:c{i}@thread.tacv2",
    )


def test_publishing_reads_ahead_in_order_and_stops_when_either_side_fails(
    redis_url: str, clean_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    reading_on: set[str] = set()

    def messages(n: int, fail_at: int = -1) -> Iterator[DeliveryMessage]:
        reading_on.add(threading.current_thread().name)
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("the ledger went away")
            read.append(i)
            yield message(i)

    def readers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "threadcast-read-ahead"]

    publisher = Publisher(redis_url)
    try:
        assert publisher.publish(messages(25_000)) == 25_000
        assert reading_on == {"threadcast-read-ahead"}  # while the gate talks to Redis
        queued = clean_redis.lrange(keys.queue(str(uuid.UUID(int=7)), str(uuid.UUID(int=1))), 0, -1)
        assert [DeliveryMessage.from_entry(e).delivery_id for e in queued] == [
            message(i).delivery_id for i in range(1, 25_000, 3)
        ]
        with pytest.raises(RuntimeError, match="the ledger went away"):
            publisher.publish(messages(50_000, fail_at=30_000))
        assert not readers()

        def gate_dies(
            gate: Entrance, messages: Iterable[DeliveryMessage], *, replace: bool = False
        ) -> int:
            next(iter(messages))
            raise BrokerError("Redis went away")

        read.clear()
        monkeypatch.setattr(Entrance, "enqueue", gate_dies)
        with pytest.raises(BrokerError, match="Redis went away"):
            publisher.publish(messages(1_000_000))
        assert not readers()
        assert len(read) <= 50_000  # it stopped reading: a few chunks ahead at most
    finally:
        publisher.close()
