"""What every benchmark starts: a private Redis, the simulator, signed-in tenants, workers.

Everything runs on this machine and is stopped when the rig closes. Figures are read from
the simulator's admin API (what Graph would have seen) and from the ledger (what threadcast
recorded).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import simulator.process
from producer import devredis
from producer.processes import WorkerProcess, start_worker
from producer.signin import sign_in
from threadcast.ledger import Ledger
from threadcast.settings import Settings, load_settings

CLIENT_ID = "b3c1e2d4-5f60-4a7b-8c9d-0e1f2a3b4c5d"


@dataclass
class Rig:
    workdir: Path
    settings: Settings
    sim: simulator.process.RunningSimulator
    redis: devredis.PrivateRedis
    tenants: list[str] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(verify=self.sim.ssl_context(), timeout=30)
        return self._http

    def admin(self, path: str) -> Any:
        return self.http.get(f"{self.sim.admin_url}{path}").raise_for_status().json()

    def sign_in(self, count: int) -> list[str]:
        for _ in range(count):
            tenant = str(uuid.uuid4())
            sign_in(self.settings, tenant, lambda _t: None)
            self.tenants.append(tenant)
        return self.tenants

    def start_workers(
        self, processes: int, instances: int = 1, extra: Sequence[str] = (), **env: str
    ) -> None:
        child_env = os.environ | self.settings.as_env() | env
        for i in range(instances):
            log = self.workdir / f"worker-{len(self.workers)}-{i}.log"
            self.workers.append(
                start_worker(log, env=child_env, concurrency=processes, extra=extra)
            )

    def ledger(self) -> Ledger:
        return Ledger.open(self.settings.database_url)


@contextlib.contextmanager
def rig(
    sim_args: Sequence[str] = (), database_url: str | None = None, **settings: Any
) -> Iterator[Rig]:
    workdir = Path(tempfile.mkdtemp(prefix="threadcast-bench-"))
    with contextlib.ExitStack() as stack:
        redis = devredis.start_private()
        stack.callback(redis.stop)
        sim = simulator.process.start(
            workdir / "sim", device_approve_delay=0.05, extra_args=list(sim_args)
        )
        stack.callback(sim.stop)
        config = load_settings(
            redis_url=redis.url,
            database_url=database_url or f"sqlite:///{workdir / 'ledger.db'}",
            graph_url=sim.graph_url,
            authority_host=sim.authority_host,
            ca_bundle=sim.ca_bundle,
            client_id=CLIENT_ID,
            token_cache_key=Fernet.generate_key().decode(),
            **{"log_level": "WARNING", **settings},
        )
        bench = Rig(workdir, config, sim, redis)
        stack.callback(lambda: [w.stop() for w in bench.workers])
        yield bench


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated runs: the machine's noise is reported, not hidden."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": len(values),
    }
