"""``threadcast demo`` (``make demo``): the whole pipeline against the local simulator.

Starts what it needs (a private Redis when none is reachable, the simulator, a worker),
signs three demo tenants in through the real device-code flow, sends one HTML broadcast to
300 channels, shows progress, and compares the ledger with what the simulator received.

Two scenarios here, each on a fresh ledger and simulator (a third, ``announce``, a rich
announcement to an audience, edited and recalled, is producer/demo_announce.py):

- ``seed``: the simulator answers the seed's beta ``chatthreads`` request, and every
  delivery is posted there.
- ``today``: the simulator answers as live Graph does now (``--chatthreads-removed``); the
  deployment must switch to v1.0 ``channel-messages`` once and post every delivery there.

Exit status 0 only if all 300 were sent exactly once, none failed, and the endpoint did what
the scenario expects.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from cryptography.fernet import Fernet

import simulator  # its public entry only: start() and RunningSimulator
from producer import devredis, status
from producer.client import Producer
from producer.processes import start_worker
from producer.signin import sign_in
from threadcast.constants import ENDPOINT_KEY, TOKEN_CACHE_KEY
from threadcast.contract import Target
from threadcast.endpoints import AUTO, CHANNEL_MESSAGES, CHATTHREADS, Switch, recorded
from threadcast.settings import Settings, load_settings

TENANTS = 3
TEAMS_PER_TENANT = 10
CHANNELS_PER_TEAM = 10
# Each worker process may spend one request on the removed endpoint before it hears of the
# switch, so the `today` check's bound is this number.
WORKER_PROCESSES = 2
DEMO_CLIENT_ID = "0d3a5c2e-7c1a-4f7e-9d63-1a2b3c4d5e6f"
CONTENT = (
    "<h1>threadcast demo</h1><p>One announcement, 300 channels, three tenants: "
    "each posted exactly once.</p>"
)


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


@dataclass(frozen=True)
class Outcome:
    """What one run left behind, read once nothing moves any more."""

    expected: int
    final: dict[str, Any]  # the broadcast's report as `threadcast status --json` prints it
    stats: dict[str, Any]  # the simulator's GET /_sim/stats
    switch: Switch | None  # the ledger's deployment row (the truth)
    redis_copy: Switch | None  # Redis's copy of it, which every worker process reads

    def attempts(self, endpoint: str, outcome: str) -> int:
        return int(self.final["endpoint"]["attempts"].get(endpoint, {}).get(outcome, 0))

    def sent_exactly_once(self) -> bool:
        """The ledger says every delivery was sent and none failed, and the simulator saw
        each message once: the ledger alone cannot see a duplicate post."""
        final, stats, n = self.final, self.stats, self.expected
        return bool(
            final["sent"] == n
            and final["failed"] == 0
            and stats["unique"] == n
            and stats["duplicates"] == 0
        )


@dataclass(frozen=True)
class Verdict:
    lines: list[str]
    ok: bool
    summary: str  # appended to the final OK/FAILED line


def _seed_verdict(outcome: Outcome) -> Verdict:
    posted = outcome.attempts(CHATTHREADS, "sent")
    if outcome.switch is not None:
        return Verdict([f"endpoint: UNEXPECTED switch: {outcome.switch.describe()}"], False, "")
    line = f"endpoint: {CHATTHREADS} (the seed's): {posted} sent there, no switch recorded"
    return Verdict([line], posted == outcome.expected, "")


def _today_verdict(outcome: Outcome) -> Verdict:
    switch, rerouted = outcome.switch, outcome.attempts(CHATTHREADS, "rerouted")
    refused = int(outcome.stats["rejected"].get("400", 0))
    # "Once": the ledger keeps one row per fact name and the first writer wins
    # (DeploymentFacts.put_once), so a row there is the one switch, whoever raced to make it.
    if switch is None:
        lines = ["switch: NONE recorded in the ledger"]
    else:
        copied = "Redis has its copy" if outcome.redis_copy == switch else "Redis has NO copy"
        lines = [
            f"switch: to {switch.endpoint}, recorded once (ledger deployment row; {copied}) at "
            f"{switch.at} by {switch.worker}, after Graph answered {switch.reason!r}"
        ]
    lines.append(
        f"dead endpoint: {_requests(rerouted)} met it and went on to {CHANNEL_MESSAGES} at once "
        f"(rerouted attempts; at most 1 per worker process, {WORKER_PROCESSES} processes; "
        f"the simulator refused {refused})"
    )
    ok = (
        switch is not None
        and switch.endpoint == CHANNEL_MESSAGES
        and outcome.redis_copy == switch
        and 1 <= rerouted <= WORKER_PROCESSES
        and rerouted == refused
        and outcome.attempts(CHANNEL_MESSAGES, "sent") == outcome.expected
    )
    summary = (
        f" through {CHANNEL_MESSAGES}, none failed; the switch recorded once; "
        f"{_requests(rerouted)} met the dead endpoint"
    )
    return Verdict(lines, ok, summary)


def _requests(n: int) -> str:
    return f"{n} request{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    sim_flags: tuple[str, ...]  # the simulator's own CLI flags: the demo drives it from outside
    verdict: Callable[[Outcome], Verdict]


SCENARIOS = {
    "seed": Scenario(
        "seed",
        "Graph as the seed's page describes it: the beta chatthreads endpoint posts",
        (),
        _seed_verdict,
    ),
    "today": Scenario(
        "today",
        "Graph as it answers today: the beta chatthreads segment is gone, so the "
        "deployment must switch to v1.0 channel messages once",
        ("--chatthreads-removed",),
        _today_verdict,
    ),
}


def main(scenario: str = "seed", workdir: Path | None = None) -> int:
    plan = SCENARIOS[scenario]
    workdir = workdir or Path(".demo") / plan.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    say(f"scenario {plan.name}: {plan.about}")
    with contextlib.ExitStack() as stack:
        redis_url = private_redis(stack.callback)
        sim = simulator.start(workdir / "sim", device_approve_delay=1.0, extra_args=plan.sim_flags)
        stack.callback(sim.stop)
        flags = "".join(f" {flag}" for flag in plan.sim_flags)
        say(f"simulator at {sim.graph_url} (CA {sim.ca_bundle}){flags}")
        settings = load_settings(
            redis_url=redis_url,
            database_url=f"sqlite:///{workdir.resolve() / 'ledger.db'}",
            graph_url=sim.graph_url,
            authority_host=sim.authority_host,
            ca_bundle=sim.ca_bundle,
            client_id=DEMO_CLIENT_ID,
            token_cache_key=Fernet.generate_key().decode(),
            endpoint=AUTO,  # the default, whatever this shell says: the scenario shows it
        )
        tenants = [str(uuid.uuid4()) for _ in range(TENANTS)]
        forget(redis_url, tenants)  # a switch an earlier demo left in a shared Redis
        stack.callback(forget, redis_url, tenants)
        for tenant in tenants:
            say(f"signing in tenant {tenant} (device-code flow)")
            user, _ = sign_in(settings, tenant, lambda text: say(f"  {text}"))
            say(f"  signed in as {user}")
        worker = start_worker(
            workdir / "worker.log",
            env=os.environ | settings.as_env(),
            concurrency=2,
            processes=WORKER_PROCESSES,
        )
        stack.callback(worker.stop)
        # start_worker runs this interpreter: shown so an install check can see which one.
        say(f"worker started ({sys.executable}); sending one HTML broadcast to 300 channels")
        return _judge(plan, _run(settings, tenants, sim))


def private_redis(cleanup: Callable[..., Any]) -> str:
    configured = os.environ.get("THREADCAST_REDIS_URL")
    # The demo keeps off database 0 of a shared Redis: its queue must not reach real workers.
    url = configured or "redis://127.0.0.1:6379/15"
    if devredis.reachable(url):
        say(f"using Redis at {url}")
        return url
    server = devredis.start_private()
    cleanup(server.stop)
    say(f"no Redis reachable at {url}: started a private redis-server at {server.url}")
    return server.url


def forget(redis_url: str, tenants: list[str]) -> None:
    """Leave a shared Redis as the demo found it: its token caches and its endpoint switch
    go with it (a switch left behind would send the next `seed` demo to v1.0)."""
    client = redis.Redis.from_url(redis_url)
    with contextlib.suppress(redis.RedisError):
        client.delete(ENDPOINT_KEY, *(TOKEN_CACHE_KEY + tenant for tenant in tenants))
    client.close()


def _targets(tenants: list[str]) -> Iterator[Target]:
    for tenant in tenants:
        for _ in range(TEAMS_PER_TENANT):
            team = str(uuid.uuid4())
            for _ in range(CHANNELS_PER_TEAM):
                yield Target(tenant, team, f"19:{uuid.uuid4().hex}@thread.tacv2")


def _run(settings: Settings, tenants: list[str], sim: simulator.RunningSimulator) -> Outcome:
    with Producer(settings) as producer:
        result = producer.send(CONTENT, list(_targets(tenants)), content_type="html", source="demo")
        say(f"broadcast {result.broadcast_id}: {result.deliveries} deliveries queued")
        final = status.watch(producer.ledger, result.broadcast_id, endpoint=settings.endpoint)
        switch = recorded(producer.ledger.deployment)
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as http:
        stats = http.get(f"{sim.admin_url}/stats").raise_for_status().json()
    client = redis.Redis.from_url(settings.redis_url)
    raw = client.get(ENDPOINT_KEY)
    client.close()
    print(status.render(final))
    expected = TENANTS * TEAMS_PER_TENANT * CHANNELS_PER_TEAM
    copy = None if raw is None else Switch.from_json(raw)
    return Outcome(expected, status.as_json(final), stats, switch, copy)


def _judge(plan: Scenario, outcome: Outcome) -> int:
    final, stats = outcome.final, outcome.stats
    say(
        f"ledger: sent {final['sent']}, failed {final['failed']}, unknown {final['unknown']} | "
        f"simulator: accepted {stats['accepted']}, unique {stats['unique']}, "
        f"duplicates {stats['duplicates']}"
    )
    verdict = plan.verdict(outcome)
    for line in verdict.lines:
        say(line)
    ok = outcome.sent_exactly_once() and verdict.ok
    say(
        f"{'OK' if ok else 'FAILED'}: {final['sent']}/{outcome.expected} sent exactly once"
        f"{verdict.summary}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if sys.argv[1:] else "seed"))
