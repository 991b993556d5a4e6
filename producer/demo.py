"""``threadcast demo`` (``make demo``): the whole pipeline against the local simulator.

Starts what it needs (a private Redis when none is reachable, the simulator, a worker),
signs three demo tenants in through the real device-code flow, sends one HTML broadcast to
300 channels, shows progress, and compares the ledger with what the simulator received.
Exit status 0 only if all 300 were sent exactly once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
from cryptography.fernet import Fernet

import simulator.process
from producer import devredis, status
from producer.client import Producer
from producer.processes import start_worker
from producer.signin import sign_in
from threadcast.constants import TOKEN_CACHE_KEY
from threadcast.contract import Target
from threadcast.settings import load_settings

TENANTS = 3
TEAMS_PER_TENANT = 10
CHANNELS_PER_TEAM = 10
DEMO_CLIENT_ID = "0d3a5c2e-7c1a-4f7e-9d63-1a2b3c4d5e6f"
CONTENT = (
    "<h1>threadcast demo</h1><p>One announcement, 300 channels, three tenants: "
    "each posted exactly once.</p>"
)


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def main(workdir: Path = Path(".demo")) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        redis_url = _redis(stack.callback)
        sim = simulator.process.start(workdir / "sim", device_approve_delay=1.0)
        stack.callback(sim.stop)
        say(f"simulator at {sim.graph_url} (CA {sim.ca_bundle})")
        settings = load_settings(
            redis_url=redis_url, database_url=f"sqlite:///{workdir.resolve() / 'ledger.db'}",
            graph_url=sim.graph_url, authority_host=sim.authority_host, ca_bundle=sim.ca_bundle,
            client_id=DEMO_CLIENT_ID, token_cache_key=Fernet.generate_key().decode(),
        )  # fmt: skip
        tenants = [str(uuid.uuid4()) for _ in range(TENANTS)]
        stack.callback(_forget_tenants, redis_url, tenants)
        for tenant in tenants:
            say(f"signing in tenant {tenant} (device-code flow)")
            user, _ = sign_in(settings, tenant, lambda text: say(f"  {text}"))
            say(f"  signed in as {user}")
        worker = start_worker(workdir / "worker.log", env=os.environ | settings.as_env())
        stack.callback(worker.stop)
        say("worker started; sending one HTML broadcast to 300 channels")
        return _run(settings, tenants, sim)


def _redis(cleanup: Callable[..., Any]) -> str:
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


def _forget_tenants(redis_url: str, tenants: list[str]) -> None:
    """Leave a shared Redis as the demo found it: its token caches go with it."""
    client = redis.Redis.from_url(redis_url)
    with contextlib.suppress(redis.RedisError):
        client.delete(*(TOKEN_CACHE_KEY + tenant for tenant in tenants))
    client.close()


def _targets(tenants: list[str]) -> Iterator[Target]:
    for tenant in tenants:
        for _ in range(TEAMS_PER_TENANT):
            team = str(uuid.uuid4())
            for _ in range(CHANNELS_PER_TEAM):
                yield Target(tenant, team, f"19:{uuid.uuid4().hex}@thread.tacv2")


def _run(settings: Any, tenants: list[str], sim: simulator.process.RunningSimulator) -> int:
    expected = TENANTS * TEAMS_PER_TENANT * CHANNELS_PER_TEAM
    with Producer(settings) as producer:
        result = producer.send(CONTENT, list(_targets(tenants)), content_type="html", source="demo")
        say(f"broadcast {result.broadcast_id}: {result.deliveries} deliveries queued")
        final = status.watch(producer.ledger, result.broadcast_id)
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as http:
        stats = http.get(f"{sim.admin_url}/stats").raise_for_status().json()
    print(status.render(final))
    say(
        f"ledger: sent {final['sent']}, failed {final['failed']}, unknown {final['unknown']} | "
        f"simulator: accepted {stats['accepted']}, unique {stats['unique']}, "
        f"duplicates {stats['duplicates']}"
    )
    ok = final["sent"] == expected and stats["unique"] == expected and stats["duplicates"] == 0
    say(f"{'OK' if ok else 'FAILED'}: {final['sent']}/{expected} sent exactly once")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
