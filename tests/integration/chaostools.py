"""What the chaos tests and ``bench/chaos.py`` share: fault knobs, processes to kill, the
``threadcast scheduler`` process, and what the ledger and the simulator each say about one
broadcast, matched post by post through the ``client-request-id`` every attempt sends.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import select

import simulator.process
from producer import devredis
from producer.processes import WorkerProcess
from simulator.process import RunningSimulator
from tests.integration.stack import SimAdmin
from threadcast.ledger import Ledger
from threadcast.ledger.deliveries import LOST_LEASE
from threadcast.ledger.schema import attempts, deliveries

#: Every fault and delay off: what a test leaves behind.
NO_FAULTS: dict[str, float] = {
    "fault_503": 0,
    "fault_503_bare": 0,
    "fault_504": 0,
    "fault_drop": 0,
    "fault_accept_delay": 0,
    "latency_ms": 0,
    "latency_jitter_ms": 0,
}

#: States a delivery leaves by itself (a worker or the scheduler acts on it).
MOVING = ("scheduled", "queued", "retrying", "sending")
#: Of those, the ones that still wait for a worker to take them.
WAITING = ("scheduled", "queued", "retrying")

Target = tuple[str, str, str]  # tenant, group, channel


def configure(sim: RunningSimulator, **knobs: float) -> dict[str, Any]:
    """Change the simulator's faults and limits at runtime (``POST /_sim/config``)."""
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as http:
        answer = http.post(f"{sim.admin_url}/config", json=knobs).raise_for_status()
        return dict(answer.json())


# -- a simulator of the module's own (its faults and counters are nobody else's) ------------
# Fixtures named sim, sim_admin and faults: a test module that imports them runs on its own
# simulator (they override the session's ``sim`` and ``sim_admin`` of the conftest).
@pytest.fixture(scope="module", name="sim")
def own_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(tmp_path_factory.mktemp("sim"), device_approve_delay=0.1)
    yield running
    running.stop()


@pytest.fixture(scope="module", name="sim_admin")
def own_sim_admin(sim: RunningSimulator) -> Iterator[SimAdmin]:
    admin = SimAdmin(sim)
    yield admin
    admin.close()


@pytest.fixture(name="faults")
def faults_off_after(sim: RunningSimulator) -> Iterator[None]:
    """Whatever a test switches on is off again afterwards, even when it fails."""
    yield
    configure(sim, **NO_FAULTS)


def posts_of(admin: SimAdmin, content: str) -> list[dict[str, Any]]:
    """The simulator's accepted posts with this content (each test sends its own)."""
    return [p for p in admin.posts() if p["content"] == content]


def spread(tenants: list[str], n: int, teams_per_tenant: int) -> list[dict[str, str]]:
    """``n`` targets, round-robin over the tenants and their teams, each a channel of its own."""
    teams = {t: [str(uuid.uuid4()) for _ in range(teams_per_tenant)] for t in tenants}
    return [
        {
            "tenant": (tenant := tenants[i % len(tenants)]),
            "group": teams[tenant][(i // len(tenants)) % teams_per_tenant],
            "channel": f"19:chaos{i}x{uuid.uuid4().hex[:6]}@thread.tacv2",
        }
        for i in range(n)
    ]


# -- processes ---------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a worker's pool), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Killer:
    """SIGKILLs a ``threadcast worker`` it starts every ``every`` seconds: a pool process of a
    prefork worker (Celery forks a new one), or -- a threads worker having no pool processes
    -- the whole worker, replaced by a new one; once (``whole_at``), the whole worker anyway.
    """

    start: Callable[[int], WorkerProcess]  # starts victim number n
    every: float = 2.0
    seed: int = 0
    in_flight: int = 1  # the most posts one victim (threads worker) has in flight at once
    children_killed: int = 0
    workers_killed: int = 0
    processes_per_worker: int = 0  # pool processes that died with the whole worker
    flights_killed: int = 0  # posts that threads workers killed whole may have had in flight
    victims: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # chaos, not secrecy

    def __enter__(self) -> Killer:
        self.victims.append(self.start(0))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for victim in self.victims:
            victim.stop()

    @property
    def kills(self) -> int:
        return self.children_killed + self.workers_killed

    @property
    def most_lost(self) -> int:
        """The most deliveries these kills can have caught mid-attempt: one per pool process
        killed, and every post a threads worker killed whole had in flight."""
        return self.children_killed + self.processes_per_worker + self.flights_killed

    def run(self, busy: Callable[[], bool], whole_at: int = 3, most: int = 200) -> None:
        """Kill while ``busy()``; the ``whole_at``-th kill takes the whole worker."""
        while busy() and self.kills < most:
            time.sleep(self.every)
            if self.kills + 1 == whole_at:
                self.kill_worker()
            else:
                self.kill_child()

    def kill_child(self) -> None:
        pool = children(self.victims[-1].process.pid)
        if not pool:
            self.kill_worker()  # a threads worker: its posts are in the one process
        elif _kill(self._rng.choice(pool)):
            self.children_killed += 1

    def kill_worker(self) -> None:
        """SIGKILL the worker's main process and its pool at once, then start another."""
        victim = self.victims[-1]
        pool = children(victim.process.pid)
        _kill(victim.process.pid)
        self.processes_per_worker += sum(_kill(pid) for pid in pool)
        if not pool:
            self.flights_killed += self.in_flight
        victim.process.wait()
        self.workers_killed += 1
        self.victims.append(self.start(len(self.victims)))


class RestartableRedis:
    """A private ``redis-server`` that can crash (SIGKILL) and come back empty on its port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = devredis.free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not devredis.reachable(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: every connection is cut, every key gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class SchedulerProcess:
    """``python -m producer.cli scheduler`` with a stack's environment, stopped on exit."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "scheduler"],
            env=dict(env),
            cwd=log_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> SchedulerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # clean stop: the leader lease is released
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# -- what the ledger says ----------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    id: str
    target: Target
    state: str
    attempts: int
    last_status: int | None
    last_error_code: str | None


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    target: Target
    outcome: str | None
    error_code: str | None


def ledger_deliveries(ledger: Ledger, broadcast_id: str) -> list[Delivery]:
    d = deliveries.c
    query = select(
        d.id,
        d.tenant_id,
        d.group_id,
        d.channel_id,
        d.state,
        d.attempts,
        d.last_status,
        d.last_error_code,
    ).where(d.broadcast_id == broadcast_id)
    with ledger.engine.connect() as conn:
        return [
            Delivery(
                r.id,
                (r.tenant_id, r.group_id, r.channel_id),
                r.state,
                r.attempts,
                r.last_status,
                r.last_error_code,
            )
            for r in conn.execute(query)
        ]


def ledger_attempts(ledger: Ledger, broadcast_id: str) -> dict[str, Attempt]:
    """Every attempt of the broadcast by the ``client-request-id`` it sent."""
    a, d = attempts.c, deliveries.c
    query = (
        select(
            a.client_request_id,
            a.delivery_id,
            d.tenant_id,
            d.group_id,
            d.channel_id,
            a.outcome,
            a.error_code,
        )
        .join(deliveries, d.id == a.delivery_id)
        .where(d.broadcast_id == broadcast_id)
    )
    with ledger.engine.connect() as conn:
        return {
            r.client_request_id: Attempt(
                r.delivery_id, (r.tenant_id, r.group_id, r.channel_id), r.outcome, r.error_code
            )
            for r in conn.execute(query)
        }


def count_in(ledger: Ledger, broadcast_id: str, states: Iterable[str]) -> int:
    counts = ledger.broadcasts.counts(broadcast_id)
    return sum(counts[s] for s in states)


# -- the verdict -------------------------------------------------------------------------
def cause(error_code: str | None) -> str:
    """Why a delivery is ``unknown``: its worker died, or Graph's answer never came."""
    if error_code == LOST_LEASE:
        return "worker_lost"
    if error_code in ("network:ReadTimeout", "network:WriteTimeout"):
        return "timeout"  # the answer was held back past THREADCAST_HTTP_TIMEOUT
    if error_code in ("network:RemoteProtocolError", "network:ReadError", "network:WriteError"):
        return "disconnect"  # the connection died after the request went out
    return "other"


@dataclass(frozen=True)
class Figures:
    """One broadcast under chaos, as the ledger and the simulator each tell it."""

    deliveries: int
    states: dict[str, int]
    posts: int  # posts the simulator accepted for this broadcast
    unique_posts: int  # distinct targets among them
    duplicates: int
    duplicates_not_unknown: int  # extra posts of deliveries that are not unknown
    posted_unknown: int  # unknown deliveries whose post exists ("the posts behind unknown")
    sent_without_post: int
    sent_post_mismatch: int  # sent, but its post came from another attempt than the sent one
    failed_with_post: int
    failed_not_permanent: int  # failed for another reason than a 4xx (not 429)
    foreign_posts: int  # posts whose client-request-id is no attempt of their target
    delayed_posts: int  # accepted, answer held back past the timeout (simulator's mark)
    delayed_not_unknown: int
    unknown_by_cause: dict[str, int]
    faults: dict[str, int]  # the simulator's fault counts during the run

    @property
    def worker_lost(self) -> int:
        """The kills that landed mid-attempt (settled by the lease sweep)."""
        return self.unknown_by_cause.get("worker_lost", 0)

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "worker_lost": self.worker_lost}


def figures(
    ledger: Ledger, broadcast_id: str, posts: list[dict[str, Any]], faults: Mapping[str, int]
) -> Figures:
    """``posts``: the simulator's accepted posts of this broadcast (filter by content)."""
    rows = ledger_deliveries(ledger, broadcast_id)
    tried = ledger_attempts(ledger, broadcast_id)
    state = {row.target: row.state for row in rows}
    posted = Counter(_target(p) for p in posts)
    in_state = {s: [r for r in rows if r.state == s] for s in set(state.values())}
    unknown, sent, failed = (in_state.get(s, []) for s in ("unknown", "sent", "failed"))
    delayed = [p for p in posts if p.get("delayed_answer")]
    return Figures(
        deliveries=len(rows),
        states={s: len(v) for s, v in sorted(in_state.items())},
        posts=len(posts),
        unique_posts=len(posted),
        duplicates=len(posts) - len(posted),
        duplicates_not_unknown=sum(n - 1 for t, n in posted.items() if state[t] != "unknown"),
        posted_unknown=sum(1 for r in unknown if posted[r.target]),
        sent_without_post=sum(1 for r in sent if not posted[r.target]),
        sent_post_mismatch=_sent_post_mismatch(sent, posts, tried),
        failed_with_post=sum(1 for r in failed if posted[r.target]),
        failed_not_permanent=sum(1 for r in failed if not _permanent(r.last_status)),
        foreign_posts=sum(1 for p in posts if _attempt_target(tried, p) != _target(p)),
        delayed_posts=len(delayed),
        delayed_not_unknown=sum(1 for p in delayed if state[_target(p)] != "unknown"),
        unknown_by_cause=dict(Counter(cause(r.last_error_code) for r in unknown)),
        faults=dict(faults),
    )


def guarantees(got: Figures, most_lost: int) -> dict[str, bool]:
    """The issue's figures as named checks (True: it holds). ``most_lost``: the most
    deliveries the kills can have caught mid-attempt (:attr:`Killer.most_lost`)."""
    states, causes = got.states, got.unknown_by_cause
    unknown, held, dropped = (
        states.get("unknown", 0),
        got.faults["accepted_then_delayed"],
        got.faults["dropped"],
    )
    return {
        "every delivery ends sent, failed or unknown": set(states) <= {"sent", "failed", "unknown"},
        "failed only for a permanent error (4xx), never posted": got.failed_not_permanent
        == got.failed_with_post
        == 0,
        "unique posts = sent + the posts behind unknown": got.unique_posts
        == states.get("sent", 0) + got.posted_unknown,
        "each sent delivery posted by its sent attempt": got.sent_without_post
        == got.sent_post_mismatch
        == 0,
        "every post made by an attempt of its own delivery": got.foreign_posts == 0,
        "zero duplicates among deliveries not unknown": got.duplicates_not_unknown == 0,
        "zero duplicates at all (unknown is never re-sent)": got.duplicates == 0,
        "every unknown has a cause": set(causes) <= {"timeout", "disconnect", "worker_lost"},
        "unknown by timeout <= answers held back": causes.get("timeout", 0) <= held,
        "unknown by disconnect <= connections dropped": causes.get("disconnect", 0) <= dropped,
        "kills mid-attempt <= posts in flight at the kills": got.worker_lost <= most_lost,
        "posts behind unknown <= held back + kills mid-POST": got.posted_unknown
        <= held + got.worker_lost,
        "unknown <= held back + dropped + kills mid-POST": unknown
        <= held + dropped + got.worker_lost,
        "every post whose answer was held back is unknown": got.delayed_posts == held
        and got.delayed_not_unknown == 0,
    }


def _target(post: Mapping[str, Any]) -> Target:
    return post["tenant"], post["group"], post["channel"]


def _attempt_target(tried: Mapping[str, Attempt], post: Mapping[str, Any]) -> Target | None:
    """The target of the attempt that sent this post (None: no attempt of ours sent it)."""
    found = tried.get(post["client_request_id"])
    return None if found is None else found.target


def _sent_post_mismatch(
    sent: list[Delivery], posts: list[dict[str, Any]], tried: Mapping[str, Attempt]
) -> int:
    """Sent deliveries whose post is not the one their sent attempt made."""
    sent_by = {a.target: crid for crid, a in tried.items() if a.outcome == "sent"}
    post_by = {_target(p): p["client_request_id"] for p in posts}
    return sum(1 for r in sent if post_by.get(r.target) != sent_by.get(r.target))


def _permanent(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status != 429


def fault_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {name: int(after[name]) - int(before.get(name, 0)) for name in after}
