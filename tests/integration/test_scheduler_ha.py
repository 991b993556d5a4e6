"""High availability end to end: two ``threadcast scheduler`` processes on the real stack
(simulator, Redis, worker, PostgreSQL), the leader SIGKILLed mid-stream.

A schedule fires every second (the optional seconds field); one-off broadcasts fall due
around the kill; one was left released-but-unpublished by a "dead" scheduler; one is
cancelled. Afterwards every occurrence from the first to the last exists exactly once,
each posted once per target, every due one-off posted once, the cancelled one never.
Assertions are on ledger states and counts; waits only bound how long we look.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producer.client import Producer
from producer.scheduler import Schedules
from producer.scheduler.plan import occurrence_broadcast_id
from tests.integration.conftest import Stack
from tests.integration.leases import current_holder
from tests.integration.stack import wait_for
from threadcast.constants import SCHEDULER_LEASE_KEY
from threadcast.ledger.launches import LaunchState
from threadcast.ledger.schedules import OccurrenceState

# One stack, where two schedulers truly race (the suite under 10 minutes).
pytestmark = pytest.mark.backends("postgresql")

SECOND = timedelta(seconds=1)


class Schedulers:
    """``python -m producer.cli scheduler`` processes with the stack's environment."""

    def __init__(self, stack: Stack, workdir: Path) -> None:
        self.env = stack.env | {
            "THREADCAST_SCHEDULER_LEASE_SECONDS": "1",
            "THREADCAST_LOG_LEVEL": "INFO",
        }
        self.workdir = workdir
        self.stack = stack
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> int:
        log = (self.workdir / f"scheduler-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "scheduler"],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[process.pid] = process
        return process.pid

    def leader(self) -> int | None:
        holder = current_holder(self.stack.redis, SCHEDULER_LEASE_KEY)
        return None if holder is None else int(holder.split(":")[1])

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("*.log"))

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def schedulers(stack: Stack, tmp_path: Path) -> Iterator[Schedulers]:
    running = Schedulers(stack, tmp_path)
    yield running
    running.stop_all()
    stack.redis.delete(SCHEDULER_LEASE_KEY)


def targets(stack: Stack, tag: str) -> list[dict[str, str]]:
    group = str(uuid.uuid4())
    return [
        {"tenant": stack.tenants[i], "group": group, "channel": f"19:{tag}{i}@thread.tacv2"}
        for i in range(2)
    ]


def recorded(stack: Stack, sid: str) -> int:
    return len(stack.ledger.schedules.occurrences(sid, 10_000))


def sent(stack: Stack, broadcast_id: str) -> bool:
    return stack.ledger.broadcasts.counts(broadcast_id)["sent"] == 2


def test_each_occurrence_once_across_a_killed_leader(stack: Stack, schedulers: Schedulers) -> None:
    tag = uuid.uuid4().hex[:8]
    content = f"<p>every second {tag}</p>"
    with Schedules(stack.settings) as api:
        sid = api.add("* * * * * *", "Europe/Berlin", content, targets(stack, "s")).id
    with Producer(stack.settings) as producer:
        start = datetime.now(UTC)

        def one_off(name: str, delay: float) -> str:
            result = producer.send(
                f"<p>{name} {tag}</p>",
                targets(stack, name),
                send_at=start + delay * SECOND,
                broadcast_id=f"{name}-{tag}",
            )
            assert result.scheduled
            return result.broadcast_id

        orphan, early, late, called_off = (
            one_off("orphan", 60),
            one_off("early", 2),
            one_off("late", 6),
            one_off("off", 3),
        )
        assert producer.cancel(called_off) == 2
    # A scheduler released `orphan` in the ledger and died before publishing it.
    stack.ledger.launches.launch(orphan, start, LaunchState.ON_TIME, start)

    first, second = schedulers.start(), schedulers.start()
    try:
        wait_for(lambda: recorded(stack, sid) >= 2, timeout=30, what="a few occurrences")
        leader = schedulers.leader()
        assert leader in (first, second)
        os.kill(leader, signal.SIGKILL)
        schedulers.processes[leader].wait()
        at_kill = recorded(stack, sid)
        survivor = second if leader == first else first
        wait_for(lambda: schedulers.leader() == survivor, timeout=15, what="the takeover")
        wait_for(lambda: recorded(stack, sid) >= at_kill + 2, timeout=15, what="more occurrences")
        wait_for(lambda: stack.ledger.launches.get(late) is not None, timeout=15, what="`late`")
        with Schedules(stack.settings) as api:
            api.pause(sid)
        schedulers.processes[survivor].send_signal(signal.SIGTERM)
        assert schedulers.processes[survivor].wait(timeout=15) == 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- scheduler logs ---\n{schedulers.logs()}") from None
    assert current_holder(stack.redis, SCHEDULER_LEASE_KEY) is None  # released on SIGTERM

    # Every occurrence from the first to the last, exactly once, each finished.
    occurrences = sorted(stack.ledger.schedules.occurrences(sid, 10_000), key=lambda o: o.at)
    ats = [o.at for o in occurrences]
    assert ats == [ats[0] + n * SECOND for n in range(len(ats))], "an occurrence was skipped"
    assert {o.state for o in occurrences} <= {OccurrenceState.ON_TIME, OccurrenceState.LATE}
    assert all(o.released_at is not None for o in occurrences)
    assert [o.broadcast_id for o in occurrences] == [occurrence_broadcast_id(sid, a) for a in ats]
    assert stack.ledger.schedules.unfinished() == []

    # Each posted once per target: no occurrence (and no one-off) went out twice.
    due_one_offs = [orphan, early, late]
    everything = [o.broadcast_id or "" for o in occurrences] + due_one_offs
    wait_for(lambda: all(sent(stack, b) for b in everything), timeout=60, what="all sent")
    posts = stack.sim.posts()
    assert sum(p["content"] == content for p in posts) == 2 * len(occurrences)
    for name in ("orphan", "early", "late", "off"):
        expected = 0 if name == "off" else 2
        assert sum(p["content"] == f"<p>{name} {tag}</p>" for p in posts) == expected, name
    for broadcast_id in due_one_offs:
        release = stack.ledger.launches.get(broadcast_id)
        assert release is not None and release.published_at is not None, broadcast_id
    assert stack.ledger.launches.get(called_off) is None
    assert stack.ledger.broadcasts.counts(called_off)["cancelled"] == 2
