"""Nothing lost: a flushed Redis, and a worker told to stop mid-broadcast."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime

import pytest

from producer import Producer
from producer.processes import start_worker
from tests.integration.conftest import Stack
from tests.integration.gates import Gate
from tests.integration.stack import wait_for
from threadcast.lifecycle.sweeps import OrphanSweep


def spread(stack: Stack, n: int, teams: int) -> list[dict[str, str]]:
    groups = [str(uuid.uuid4()) for _ in range(teams)]
    return [
        {
            "tenant": stack.tenants[i % 2],
            "group": groups[i % teams],
            "channel": f"19:rec{i}x@thread.tacv2",
        }
        for i in range(n)
    ]


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("postgresql")
def test_flushed_redis_mid_broadcast_loses_nothing_and_duplicates_nothing(stack: Stack) -> None:
    content = f"<p>flush {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        result = producer.send(content, spread(stack, 400, 20), content_type="html")
        counts = producer.ledger.broadcasts.counts
        wait_for(lambda: counts(result.broadcast_id)["sent"] >= 60, what="some posts")
        stack.redis.flushdb()  # queue, gate, token caches, locks: all gone
        sweep = OrphanSweep(producer.ledger, Gate(stack.redis), grace=0)
        sweep.run(datetime.now(UTC))
        assert sweep.requeued > 0
        wait_for(
            lambda: counts(result.broadcast_id)["sent"] == 400,
            timeout=120,
            what="all 400 sent after the flush",
        )
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == 400
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == 400


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("sqlite")
def test_sigterm_finishes_in_flight_posts_and_leaves_nothing_sending(stack: Stack) -> None:
    extra = start_worker(stack.workdir / "extra-worker.log", env=stack.env, concurrency=2)
    content = f"<p>term {uuid.uuid4()}</p>"
    with Producer(stack.settings) as producer:
        result = producer.send(content, spread(stack, 300, 10), content_type="html")
        counts = producer.ledger.broadcasts.counts
        wait_for(lambda: counts(result.broadcast_id)["sent"] >= 40, what="some posts")
        extra.process.send_signal(signal.SIGTERM)
        assert extra.process.wait(60) == 0
        extra.stop()
        assert "Warm shutdown" in extra.log_text()
        wait_for(
            lambda: counts(result.broadcast_id)["sent"] == 300,
            timeout=120,
            what="the remaining worker to finish",
        )
        assert counts(result.broadcast_id)["sending"] == 0
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == 300
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == 300
