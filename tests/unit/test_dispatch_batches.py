"""How the dispatcher splits a release into Celery messages."""

from __future__ import annotations

import uuid

from threadcast.contract import DeliveryMessage
from worker.dispatcher import batches


def released(n: int) -> list[DeliveryMessage]:
    t, g = str(uuid.uuid4()), str(uuid.uuid4())
    channels = [f"19:c{i}@thread.tacv2" for i in range(n)]
    return [DeliveryMessage(str(uuid.uuid4()), "b", t, g, c) for c in channels]


def test_a_big_release_goes_in_full_even_batches_each_delivery_once() -> None:
    msgs = released(64)
    split = batches(msgs, 8, spread=2)
    assert [len(b) for b in split] == [8] * 8
    assert sorted(m.delivery_id for b in split for m in b) == sorted(m.delivery_id for m in msgs)


def test_a_release_that_does_not_divide_is_shared_evenly() -> None:
    assert [len(b) for b in batches(released(9), 8)] == [5, 4]
    assert [len(b) for b in batches(released(17), 8)] == [6, 6, 5]


def test_a_small_release_is_spread_over_the_worker_processes() -> None:
    assert [len(b) for b in batches(released(3), 8, spread=4)] == [1, 1, 1]
    assert [len(b) for b in batches(released(6), 8, spread=4)] == [2, 2, 1, 1]
    assert [len(b) for b in batches(released(1), 8, spread=4)] == [1]


def test_batch_size_one_is_one_delivery_per_message() -> None:
    assert [len(b) for b in batches(released(5), 1, spread=2)] == [1] * 5
    assert batches([], 8, spread=2) == []
