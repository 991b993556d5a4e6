"""Performance benchmark: one 2-core machine against Graph's app-wide limit.

Starts a private Redis, the simulator (throttling off) and workers, and measures:

- throughput: a 20,000-delivery broadcast over 20 tenants, end to end (deliveries/s, from
  the first post the simulator accepted to the last), with threadcast's own limits lifted so
  the figure is threadcast's capacity (with the defaults it is capped at Graph's 500/s);
- CPU per delivery: user+sys milliseconds of every worker process (from /proc) and,
  separately, of the simulator, over that run;
- Redis commands per delivery over that run (Redis INFO, counting the commands inside Lua
  scripts), and on PostgreSQL (``postgresql``: the same run on a PostgreSQL ledger) its
  transactions and rows written per delivery (pg_stat_database); the SQL statements a
  worker runs per delivery, counted on a real ledger;
- enqueue: the time to accept a 100,000-target broadcast (validated, written to the ledger,
  put in the gate), on SQLite and on PostgreSQL, and the producer's peak memory;
- latency: enqueue-to-sent p50/p95/p99 at half the measured maximum rate;
- scaling: one run each of 1,000, 10,000 and 100,000 deliveries (cost should be linear);
- peak memory (VmHWM) of each worker process.

Workers run at the default log level (INFO: one line per attempt). Every figure is the
median of --runs runs, with min and max; JSON first, then a table.

    .venv/bin/python bench/performance.py --runs 3               # everything (make bench)
    .venv/bin/python bench/performance.py --only enqueue --runs 3
    .venv/bin/python bench/performance.py --only throughput --only latency --runs 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import Rig, rig, summary, wait_until
from producer import Producer

UNLIMITED = {"app_rps": 100_000, "tenant_rps": 100_000, "team_rps": 100_000}
PG_ADMIN = os.environ.get(
    "THREADCAST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def targets(tenants: list[str], total: int, teams_per_tenant: int = 50) -> list[dict[str, str]]:
    teams = {t: [str(uuid.uuid4()) for _ in range(teams_per_tenant)] for t in tenants}
    return [
        {
            "tenant": tenants[i % len(tenants)],
            "group": teams[tenants[i % len(tenants)]][(i // len(tenants)) % teams_per_tenant],
            "channel": f"19:{uuid.uuid4().hex}@thread.tacv2",
        }
        for i in range(total)
    ]


def cpu_seconds(pids: list[int]) -> float:
    """user+sys of these processes and all their descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in _with_children(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _with_children(pids: list[int]) -> list[int]:
    found = list(pids)
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            kids = [int(k) for k in task.read_text().split()]
            found += _with_children(kids)
    return found


def peak_memory_mb(pids: list[int]) -> list[float]:
    peaks = []
    for pid in _with_children(pids):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(round(int(line.split()[1]) / 1024, 1))
    return peaks


def sent_times(bench: Rig) -> list[float]:
    from datetime import datetime

    times: list[float] = []
    while True:
        page = bench.admin(f"/posts?offset={len(times)}&limit=10000")["posts"]
        if not page:
            return sorted(times)
        times += [
            datetime.fromisoformat(p["received_at"].replace("Z", "+00:00")).timestamp()
            for p in page
        ]


def throughput_run(bench: Rig, total: int) -> dict[str, Any]:
    bench.http.post(f"{bench.sim.admin_url}/reset").raise_for_status()
    client = redis.Redis.from_url(bench.settings.redis_url)
    workers = [w.process.pid for w in bench.workers]
    cpu_before, sim_before = cpu_seconds(workers), cpu_seconds([bench.sim.pid])
    commands_before = int(client.info("stats")["total_commands_processed"])
    sql_before = pg_counters(bench.settings.database_url)
    with Producer(bench.settings) as producer:
        sent = producer.send(
            "<p>throughput</p>", targets(bench.tenants, total), content_type="html"
        )
        ok = wait_until(
            lambda: producer.ledger.broadcasts.counts(sent.broadcast_id)["sent"] == total,
            timeout=900,
            every=0.25,
        )
    times = sent_times(bench)
    commands = int(client.info("stats")["total_commands_processed"]) - commands_before
    sql_after = pg_counters(bench.settings.database_url)
    client.close()
    figures = {
        "complete": ok,
        "deliveries": total,
        "per_second": round((len(times) - 1) / (times[-1] - times[0]), 1),
        "worker_cpu_ms_per_delivery": round((cpu_seconds(workers) - cpu_before) * 1000 / total, 3),
        "simulator_cpu_ms_per_delivery": round(
            (cpu_seconds([bench.sim.pid]) - sim_before) * 1000 / total, 3
        ),
        "redis_commands_per_delivery": round(commands / total, 1),
    }
    if sql_before and sql_after:
        # Every process's (producer, workers, their sweeps): PostgreSQL's own counters.
        for name in sql_before:
            figures[f"sql_{name}_per_delivery"] = round(
                (sql_after[name] - sql_before[name]) / total, 2
            )
    return figures


def pg_counters(url: str) -> dict[str, int] | None:
    """PostgreSQL's transaction and row counters for the ledger's database (None: SQLite)."""
    if not url.startswith("postgresql"):
        return None
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    assert row is not None
    return dict(
        zip(("transactions", "rows_inserted", "rows_updated", "rows_deleted"), row, strict=True)
    )


def hot_path_statements(deliveries: int = 200) -> dict[str, float]:
    """SQL statements a worker runs per delivery sent, counted on a real ledger (SQLite)
    driving the worker's own ledger calls: a claim and its outcome for each delivery."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import event

    from threadcast.contract import Broadcast, ContentType, Target
    from threadcast.ledger import DeliveryState, Ledger, Outcome

    ledger = Ledger.open(f"sqlite:///{tempfile.mkdtemp()}/count.db")
    tenant, group = str(uuid.uuid4()), str(uuid.uuid4())
    broadcast = Broadcast(
        "count",
        "<p>x</p>",
        ContentType.HTML,
        tuple(Target(tenant, group, f"19:c{i}@thread.tacv2") for i in range(deliveries)),
    )
    ledger.broadcasts.add(broadcast, broadcast.deliveries(), datetime.now(UTC))
    seen = {"statements": 0, "commits": 0}

    def count(*_: Any) -> None:
        seen["statements"] += 1

    def committed(*_: Any) -> None:
        seen["commits"] += 1

    event.listen(ledger.engine, "before_cursor_execute", count)
    event.listen(ledger.engine, "commit", committed)
    rows = list(broadcast.deliveries())
    for start in range(0, len(rows), 8):  # as Deliverer.deliver_batch does, a batch at a time
        now = datetime.now(UTC)
        claims = ledger.deliveries.claim_many(
            [(d.id, str(uuid.uuid4())) for d in rows[start : start + 8]],
            "w",
            timedelta(seconds=60),
            now,
        )
        ledger.deliveries.finish_many(
            [(c, Outcome(DeliveryState.SENT, http_status=204), now) for c in claims]  # type: ignore[misc]
        )
    ledger.close()
    # "BEGIN IMMEDIATE" is one of the statements counted (SQLite's write lock).
    return {k: round(v / deliveries, 2) for k, v in seen.items()}


def throughput(
    runs: int,
    total: int,
    processes: int,
    pool: str,
    ledger: str = "sqlite",
    sizes: list[int] | None = None,
) -> dict[str, Any]:
    """``runs`` runs of ``total`` deliveries (or one run of each of ``sizes``)."""
    results = []
    database, drop = _database(ledger)
    try:
        with rig(database_url=database, log_level="INFO", **UNLIMITED) as bench:
            bench.sign_in(20)
            extra = ("--pool", pool) if pool != "prefork" else ()
            bench.start_workers(processes, extra=extra)
            throughput_run(bench, 2000)  # warm-up: connections, caches, first tokens
            for size in sizes or [total] * runs:
                results.append(throughput_run(bench, size))
            memory = peak_memory_mb([w.process.pid for w in bench.workers])
    finally:
        drop()
    keys = [k for k in results[0] if k not in ("complete", "deliveries")]
    return {
        "pool": pool,
        "processes": processes,
        "ledger": ledger,
        "runs": results,
        **{k: summary([r[k] for r in results]) for k in keys},
        "worker_peak_memory_mb": memory,
    }


ENQUEUE_SCRIPT = """
import json, sys, time, resource, uuid
sys.path.insert(0, {root!r})
from threadcast.settings import load_settings
from producer import Producer

{targets_source}

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

settings = load_settings()
tenants = json.loads(sys.argv[1])
work = targets(tenants, {total})
with Producer(settings) as producer:
    before = rss_mb()
    started = time.perf_counter()
    result = producer.send("<p>enqueue</p>", work, content_type="html")
    seconds = time.perf_counter() - started
assert result.deliveries == {total} and result.published == {total}, result
print(json.dumps({{"seconds": seconds, "peak_mb": rss_mb(), "before_send_mb": before}}))
"""


def enqueue(runs: int, total: int, backend: str) -> dict[str, Any]:
    seconds, memory, before = [], [], []
    for _ in range(runs):
        database, drop = _database(backend)
        try:
            with rig(database_url=database) as bench:
                bench.sign_in(20)
                env = {k: v for k, v in os.environ.items() if not k.startswith("THREADCAST_")}
                env |= bench.settings.as_env()
                script = ENQUEUE_SCRIPT.format(
                    root=str(Path(__file__).resolve().parent.parent),
                    total=total,
                    targets_source=inspect.getsource(targets),
                )
                out = subprocess.run(
                    [sys.executable, "-c", script, json.dumps(bench.tenants)],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=bench.workdir,
                )
                if out.returncode != 0:
                    sys.stderr.write(out.stderr)
                    raise RuntimeError(
                        f"the enqueue child ({backend}) exited {out.returncode}; "
                        "its stderr is above"
                    )
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                seconds.append(figures["seconds"])
                memory.append(figures["peak_mb"])
                before.append(figures["before_send_mb"])
        finally:
            drop()
    return {
        "backend": backend,
        "targets": total,
        "seconds": summary(seconds),
        "producer_peak_mb": summary(memory),
        "producer_mb_before_send": summary(before),
    }


def _database(backend: str) -> tuple[str | None, Any]:
    if backend == "sqlite":
        return None, lambda: None
    name = f"threadcast_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, drop


def latency(runs: int, rate: float, seconds: float, processes: int) -> dict[str, Any]:
    """Offer deliveries at ``rate``/s (one small broadcast every 100 ms, each through the
    Producer API as a caller would) and read each delivery's enqueue-to-sent time from the
    ledger: from the commit that accepted it to the commit that recorded Graph's 204."""
    p50, p95, p99, achieved = [], [], [], []
    with rig(log_level="INFO", **UNLIMITED) as bench:
        bench.sign_in(20)
        bench.start_workers(processes)
        per_tick = max(1, round(rate / 10))
        for _ in range(runs):
            ids = []
            with Producer(bench.settings) as producer:
                began = time.monotonic()
                deadline = began + seconds
                while time.monotonic() < deadline:
                    tick = time.monotonic()
                    ids.append(
                        producer.send(
                            "<p>latency</p>",
                            targets(bench.tenants, per_tick, 5),
                            content_type="html",
                        ).broadcast_id
                    )
                    time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
                achieved.append(len(ids) * per_tick / (time.monotonic() - began))
                for broadcast_id in ids:
                    wait_until(
                        lambda b=broadcast_id: (
                            producer.ledger.broadcasts.counts(b)["sent"] == per_tick
                        ),
                        timeout=60,
                    )
                waits = _latencies(producer, ids)
            cut = statistics.quantiles(waits, n=100)
            p50.append(cut[49] * 1000)
            p95.append(cut[94] * 1000)
            p99.append(cut[98] * 1000)
    return {
        "target_per_second": rate,
        "offered_per_second": summary(achieved),
        "p50_ms": summary(p50),
        "p95_ms": summary(p95),
        "p99_ms": summary(p99),
    }


def _latencies(producer: Producer, ids: list[str]) -> list[float]:
    from sqlalchemy import select

    from threadcast.ledger.schema import deliveries

    query = select(deliveries.c.created_at, deliveries.c.sent_at).where(
        deliveries.c.broadcast_id.in_(ids)
    )
    with producer.ledger.engine.connect() as conn:
        return [(sent - created).total_seconds() for created, sent in conn.execute(query)]


def table(report: dict[str, Any]) -> str:
    """The figures as a table: median, min and max of the runs."""
    rows: list[tuple[str, Any]] = []
    for name in ("throughput", "throughput_postgresql"):
        rows += [(f"{name}: {k}", v) for k, v in report.get(name, {}).items()]
    for found in report.get("enqueue", []):
        rows += [
            (f"enqueue {found['targets']:,} ({found['backend']}): {k}", found.get(k))
            for k in ("seconds", "producer_peak_mb")
        ]
    rows += [(f"latency: {k}", v) for k, v in report.get("latency", {}).items()]
    for found in report.get("scaling", {}).get("runs", []):
        for key in ("per_second", "worker_cpu_ms_per_delivery"):
            rows.append((f"scaling {found['deliveries']:,}: {key}", _single(found[key])))
    rows += [
        (f"worker SQL per delivery: {k}", _single(v))
        for k, v in report.get("statements", {}).items()
    ]
    lines = ["| figure | median | min | max | runs |", "|---|---|---|---|---|"]
    lines += [
        f"| {label} | {v['median']} | {v['min']} | {v['max']} | {v['runs']} |"
        for label, v in rows
        if isinstance(v, dict) and "median" in v
    ]
    return "\n".join(lines)


def _single(value: float) -> dict[str, float]:
    return {"median": value, "min": value, "max": value, "runs": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--enqueue-targets", type=int, default=100_000)
    parser.add_argument("--latency-rate", type=float, default=0, help="0: half the throughput")
    parser.add_argument(
        "--only",
        action="append",
        help="repeat for several",
        choices=["throughput", "postgresql", "enqueue", "latency", "scaling"],
    )
    args = parser.parse_args()
    chosen = set(args.only or ["throughput", "postgresql", "enqueue", "latency", "scaling"])
    report: dict[str, Any] = {"statements": hot_path_statements()}
    if "throughput" in chosen:
        report["throughput"] = throughput(args.runs, args.deliveries, args.processes, args.pool)
    if "postgresql" in chosen:
        report["throughput_postgresql"] = throughput(
            args.runs, args.deliveries, args.processes, args.pool, ledger="postgresql"
        )
    if "enqueue" in chosen:
        report["enqueue"] = [
            enqueue(args.runs, args.enqueue_targets, b) for b in ("sqlite", "postgresql")
        ]
    if "latency" in chosen:
        measured = report.get("throughput", {}).get("per_second", {}).get("median")
        rate = args.latency_rate or (measured or 0) / 2
        if not rate:
            parser.error("--only latency needs --latency-rate (or the throughput scenario)")
        report["latency"] = latency(args.runs, rate, 20, args.processes)
    if "scaling" in chosen:
        report["scaling"] = throughput(
            1, 0, args.processes, args.pool, sizes=[1_000, 10_000, 100_000]
        )
    print(json.dumps(report, indent=2))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
