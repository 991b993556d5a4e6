"""The dispatcher cannot die quietly (issue #14, item 1): against a real Redis.

A turn that fails for any reason -- the broker refusing a publish, the ledger refusing a quota
note, a bug -- is logged, backed off and tried again; a loop that ends is started again; the
heartbeat says what happened; and nothing released while the broker was down waits for the
orphan sweep.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import kombu.exceptions
import pytest
import redis
import sqlalchemy.exc

from tests.integration.gates import Gate
from threadcast import heartbeat
from threadcast.constants import DISPATCHER_HEARTBEAT_KEY
from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Limits, Start, keys
from threadcast.heartbeat import Heartbeat
from threadcast.lease import LeaderLease
from worker.dispatcher import Dispatcher


def limits(channel_daily: int = 100) -> Limits:
    return Limits(
        window=1.0,
        app=1000,
        tenant=1000,
        team=1000,
        channel=1000,
        channel_daily=channel_daily,
        overrides={},
    )


def messages(n: int, *, same_channel: bool = False) -> list[DeliveryMessage]:
    tenant, team = str(uuid.uuid4()), str(uuid.uuid4())
    return [
        DeliveryMessage(
            str(uuid.uuid4()),
            "b",
            tenant,
            team,
            "19:one@thread.tacv2" if same_channel else f"19:c{i}@thread.tacv2",
        )
        for i in range(n)
    ]


class Broker:
    """A publish that refuses its first ``fail`` calls, then records what it is given."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.calls = 0
        self.published: list[str] = []
        self.sent: list[DeliveryMessage] = []
        self.lock = threading.Lock()

    def __call__(self, batches: list[list[DeliveryMessage]]) -> None:
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail:
                raise kombu.exceptions.OperationalError("Error 111 connecting: refused")
            self.published += [m.delivery_id for b in batches for m in b]
            self.sent += [m for b in batches for m in b]


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def running(clean_redis: redis.Redis) -> Iterator[Callable[..., tuple[Dispatcher, Gate]]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(
        publish: Callable[[list[list[DeliveryMessage]]], None],
        note_held: Callable[..., None] = lambda *_: None,
        channel_daily: int = 100,
    ) -> tuple[Dispatcher, Gate]:
        gate = Gate(clean_redis, limits(channel_daily))
        gate.write_limits()
        lease = LeaderLease(clean_redis, keys.LEADER, ttl=5.0)
        dispatcher = Dispatcher(
            gate,
            lease,
            publish,
            note_held,
            backlog=100,
            batch_size=4,
            heartbeat=Heartbeat(clean_redis),
        )
        thread = threading.Thread(target=dispatcher.supervise, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
        return dispatcher, gate

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def test_a_broker_outage_is_survived_and_nothing_released_waits_for_the_sweep(
    running: Callable[..., tuple[Dispatcher, Gate]], clean_redis: redis.Redis
) -> None:
    broker = Broker(fail=3)
    dispatcher, gate = running(broker)
    sent = messages(12)
    gate.enqueue(sent)
    # The failed turns are visible in the heartbeat while they last.
    wait_for(lambda: broker.calls >= 1)
    wait_for(lambda: (r := heartbeat.read(clean_redis)) is not None and r.beat.error is not None)
    reading = heartbeat.read(clean_redis)
    assert reading is not None and "OperationalError" in str(reading.beat.error)
    # After the outage every delivery is published once: what a failed publish had released
    # went straight back into the gate, not to the orphan sweep minutes later.
    wait_for(lambda: sorted(broker.published) == sorted(m.delivery_id for m in sent))
    assert broker.calls > 3 and dispatcher.restarts == 0
    wait_for(lambda: (r := heartbeat.read(clean_redis)) is not None and r.beat.error is None)
    reading = heartbeat.read(clean_redis)
    assert reading is not None and not reading.stale and reading.beat.released == 12
    assert dispatcher.error is None


def test_a_ledger_that_refuses_quota_notes_does_not_stop_the_releasing(
    running: Callable[..., tuple[Dispatcher, Gate]],
) -> None:
    broker = Broker(fail=0)
    notes: list[int] = []

    def note_held(held: list[DeliveryMessage], _until: object) -> None:
        notes.append(len(held))
        raise sqlalchemy.exc.OperationalError("UPDATE deliveries", {}, Exception("db down"))

    _, gate = running(broker, note_held, channel_daily=1)
    first = messages(3, same_channel=True)  # one goes; two are held until midnight
    gate.enqueue(first)
    wait_for(lambda: len(broker.sent) == 1)
    assert gate.start(broker.sent[0]) is Start.GO  # posted: the channel's quota is used
    wait_for(lambda: sum(notes) == 2)
    later = messages(5)
    gate.enqueue(later)
    wait_for(lambda: len(broker.published) == 6)
    assert set(m.delivery_id for m in later) <= set(broker.published)


def test_any_error_in_a_turn_is_survived(
    running: Callable[..., tuple[Dispatcher, Gate]], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(fail=0)
    calls = {"n": 0}
    real_release = Gate.release

    def flaky(self: Gate, budget: int) -> object:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("a bug in a turn")
        return real_release(self, budget)

    monkeypatch.setattr(Gate, "release", flaky)
    _, gate = running(broker)
    sent = messages(4)
    gate.enqueue(sent)
    wait_for(lambda: len(broker.published) == 4)
    assert calls["n"] > 2


def test_a_loop_that_ends_is_started_again(
    running: Callable[..., tuple[Dispatcher, Gate]], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(fail=0)
    ends = {"n": 0}
    real_run = Dispatcher.run

    def ends_once(self: Dispatcher, stop: threading.Event) -> None:
        ends["n"] += 1
        if ends["n"] == 1:
            return  # the loop returned while the worker runs: a bug
        if ends["n"] == 2:
            raise SystemExit("even this")
        real_run(self, stop)

    monkeypatch.setattr(Dispatcher, "run", ends_once)
    dispatcher, gate = running(broker)
    gate.enqueue(messages(3))
    wait_for(lambda: len(broker.published) == 3)
    assert dispatcher.restarts == 2


def test_the_heartbeat_ages_on_redis_clock_and_goes_when_nothing_turns(
    clean_redis: redis.Redis,
) -> None:
    assert heartbeat.read(clean_redis) is None
    Heartbeat(clean_redis).beat(heartbeat.Beat("host:1:x", 5, 0, None))
    reading = heartbeat.read(clean_redis)
    assert reading is not None and reading.beat.released == 5 and reading.age < 5
    clean_redis.pexpire(DISPATCHER_HEARTBEAT_KEY, 1_000)  # 29 s after its last beat
    reading = heartbeat.read(clean_redis)
    assert reading is not None and reading.stale and reading.age > 28
    clean_redis.set(DISPATCHER_HEARTBEAT_KEY, "not json", px=5_000)
    assert heartbeat.read(clean_redis) is None
