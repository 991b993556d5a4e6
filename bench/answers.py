"""Graph's ceiling at Graph's answer times: one `threadcast worker` on defaults.

Microsoft Graph answers a channel post in hundreds of milliseconds, not the simulator's
sub-millisecond; the simulator's ``--latency-ms`` delays every answer. For each answer time,
a private Redis, the simulator (no throttling: threadcast's own limits at Graph's defaults
are what binds), 20 signed-in tenants and ONE ``threadcast worker`` started exactly as the
README shows (no concurrency or pool flags) send 20 tenants x 300 channels (each tenant's
channels over 50 teams), and report:

- posts/s: from the first post the simulator accepted to the last;
- worker CPU per delivery (user+sys of the worker process, from /proc) and peak RSS (VmHWM);
- in-flight reached: the most deliveries ``sending`` at once in the ledger (claimed, POST
  on the wire), sampled every 50 ms;
- unknowns after a SIGKILL mid-run (``--kill``): the worker is killed once half the
  broadcast is sent, another started; every delivery must end sent or unknown, 0 duplicates,
  and the unknowns are at most what was in flight at the kill (the deliveries ``sending``
  in the ledger right after the kill, before another worker starts).

Median of --runs runs with min and max.

    .venv/bin/python bench/answers.py --runs 3                         # 0, 50, 250, 1000 ms
    .venv/bin/python bench/answers.py --latency-ms 250 --runs 1 --kill
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.performance import UNLIMITED, cpu_seconds, peak_memory_mb, sent_times, targets
from bench.rig import Rig, rig, summary, wait_until
from producer import Producer
from producer.processes import start_worker
from tests.integration.chaostools import SchedulerProcess, children

TENANTS, CHANNELS_PER_TENANT = 20, 300


class InFlight:
    """The most deliveries ``sending`` at once, sampled from the ledger in a thread."""

    def __init__(self, bench: Rig) -> None:
        self._ledger = bench.ledger()
        self.most = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> InFlight:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._ledger.close()

    def _sample(self) -> None:
        query = text("SELECT COUNT(*) FROM deliveries WHERE state = 'sending'")
        while not self._stop.wait(0.05):
            with self._ledger.engine.connect() as conn:
                self.last = int(conn.execute(query).scalar() or 0)
            self.most = max(self.most, self.last)


def start_default_worker(bench: Rig, name: str) -> Any:
    """``threadcast worker`` with the defaults: no -c, no -P."""
    env = os.environ | bench.settings.as_env()
    return start_worker(bench.workdir / f"{name}.log", env=env, concurrency=None, processes=None)


def counts(bench: Rig, broadcast: str) -> dict[str, int]:
    ledger = bench.ledger()
    try:
        return dict(ledger.broadcasts.counts(broadcast))
    finally:
        ledger.close()


def one_run(bench: Rig, kill: bool) -> dict[str, Any]:
    bench.http.post(f"{bench.sim.admin_url}/reset").raise_for_status()
    total = TENANTS * CHANNELS_PER_TENANT
    worker = bench.workers[-1]
    pid = worker.process.pid
    pids = [w.process.pid for w in bench.workers]
    cpu_before = cpu_seconds(pids)
    killed_at_flight = None
    with InFlight(bench) as flight, Producer(bench.settings) as producer:
        sent = producer.send(
            f"<p>answers {uuid.uuid4()}</p>", targets(bench.tenants, total), content_type="html"
        ).broadcast_id
        if kill:
            wait_until(lambda: counts(bench, sent)["sent"] >= total // 2, timeout=600)
            for victim in [pid, *children(pid)]:  # the supervisor and its worker processes
                os.kill(victim, signal.SIGKILL)
            worker.process.wait()
            # Exact: a killed process commits nothing more, and no other worker runs yet.
            killed_at_flight = counts(bench, sent).get("sending", 0)
            bench.workers.append(start_default_worker(bench, f"worker-{uuid.uuid4().hex[:6]}"))
        settled = wait_until(
            lambda: sum(counts(bench, sent)[s] for s in ("sent", "failed", "unknown")) == total,
            timeout=900,
            every=0.25,
        )
        most = flight.most
    cpu = cpu_seconds(pids) if not kill else None
    times = sent_times(bench)
    final = counts(bench, sent)
    posts = bench.admin("/stats")
    figures: dict[str, Any] = {
        "complete": settled and final["sent"] + final["unknown"] == total,
        "per_second": round((len(times) - 1) / (times[-1] - times[0]), 1),
        "in_flight_reached": most,
        "unknown": final["unknown"],
        "duplicates": int(posts.get("duplicates", 0)),
    }
    if cpu is not None:
        figures["worker_cpu_ms_per_delivery"] = round((cpu - cpu_before) * 1000 / total, 3)
    if killed_at_flight is not None:
        figures["in_flight_at_kill"] = killed_at_flight
    return figures


# After a SIGKILL, the scheduler settles what the dead worker had in flight once its lease
# ends (unknown) and re-queues what it had taken but not started: soon, for a benchmark.
_SWEEP_SOON = {"lease_margin": 3, "orphan_grace": 2, "orphan_released_grace": 5}


def at_latency(
    latency_ms: int, runs: int, kill: bool, instances: int = 1, unlimited: bool = False
) -> dict[str, Any]:
    sim_args = ["--latency-ms", str(latency_ms)]
    results = []
    limits = UNLIMITED if unlimited else {}
    with rig(sim_args=sim_args, log_level="INFO", **_SWEEP_SOON, **limits) as bench:
        bench.sign_in(TENANTS)
        for n in range(instances):
            bench.workers.append(start_default_worker(bench, f"worker-{n}"))
        for _ in range(runs):
            results.append(one_run(bench, kill=False))
        memory = sum(peak_memory_mb([w.process.pid for w in bench.workers]))
        killed = None
        if kill:
            env = os.environ | bench.settings.as_env()
            with SchedulerProcess(env, bench.workdir / "scheduler.log"):
                killed = one_run(bench, kill=True)
    keys = [k for k in results[0] if k != "complete"]
    report: dict[str, Any] = {
        "latency_ms": latency_ms,
        "runs": results,
        **{k: summary([r[k] for r in results]) for k in keys},
        "worker_peak_rss_mb": round(memory, 1),
    }
    if killed is not None:
        report["sigkill"] = killed
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--latency-ms",
        type=int,
        action="append",
        help="answer time(s) to measure; default 0, 50, 250, 1000",
    )
    parser.add_argument("--kill", action="store_true", help="also a run with a SIGKILL mid-way")
    parser.add_argument("--instances", type=int, default=1, help="threadcast workers to start")
    parser.add_argument(
        "--unlimited",
        action="store_true",
        help="threadcast's own limits lifted: the worker's capacity",
    )
    args = parser.parse_args()
    report = [
        at_latency(ms, args.runs, args.kill, args.instances, args.unlimited)
        for ms in args.latency_ms or [0, 50, 250, 1000]
    ]
    print(json.dumps(report, indent=2))
    print(
        "| answer time | posts/s | worker CPU ms/delivery | worker RSS MB | in flight | "
        "SIGKILL: unknown / in flight at kill |"
    )
    print("|---|---|---|---|---|---|")
    for r in report:
        kill = r.get("sigkill")
        shown = f"{kill['unknown']} / {kill['in_flight_at_kill']}" if kill else "-"
        cpu = r.get("worker_cpu_ms_per_delivery", {})
        print(
            f"| {r['latency_ms']} ms | {_m(r['per_second'])} | {_m(cpu)} | "
            f"{r['worker_peak_rss_mb']} | {_m(r['in_flight_reached'])} | {shown} |"
        )
    return 0


def _m(value: dict[str, float]) -> str:
    if not value:
        return "-"
    return f"{value['median']} ({value['min']} to {value['max']})"


if __name__ == "__main__":
    sys.exit(main())
