"""Enqueue from a targets file: ``threadcast send --targets FILE`` as an operator runs it.

For each ledger (SQLite, PostgreSQL) and each run: a fresh ledger (a PostgreSQL database
of its own, dropped after), a private Redis, 20 signed-in tenants, a CSV file of --targets
rows (20 tenants x 50 teams, one channel per row), then the real CLI in a child process.
Measured: the CLI's wall time (start to exit: imports, settings, reading, validating,
committing, putting every delivery in the gate), its peak memory and its CPU (the child's
own ``ru_maxrss``, ``ru_utime`` + ``ru_stime`` from wait4: nothing else's). Each run is
checked: the ledger holds the broadcast with every delivery and the gate knows every one.
Median of --runs with min and max; the load average before and after, since the machine is
shared.

    .venv/bin/python bench/enqueue_file.py --targets 1000000 --runs 3
    .venv/bin/python bench/enqueue_file.py --targets 200000 --runs 1 --backend sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.performance import _database
from bench.rig import Rig, rig, summary
from threadcast.dispatch import keys
from threadcast.ledger.schema import deliveries

CLI = Path(sys.executable).parent / "threadcast"


def write_targets(path: Path, tenants: list[str], total: int, teams_per_tenant: int = 50) -> None:
    teams = {t: [str(uuid.uuid4()) for _ in range(teams_per_tenant)] for t in tenants}
    with path.open("w", encoding="utf-8") as out:
        out.write("tenant,group,channel\n")
        for i in range(total):
            tenant = tenants[i % len(tenants)]
            group = teams[tenant][(i // len(tenants)) % teams_per_tenant]
            out.write(f"{tenant},{group},19:{uuid.uuid4().hex}@thread.tacv2\n")


def run_cli(bench: Rig, targets: Path, broadcast_id: str) -> dict[str, float]:
    """The CLI in a child process: wall seconds, its own peak RSS and CPU (wait4's rusage:
    the CPU says what the send cost when other work on the machine stretched the wall)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADCAST_")}
    env |= bench.settings.as_env()
    command = [
        str(CLI),
        "send",
        "--targets",
        str(targets),
        "--text",
        "maintenance tonight",
        "--broadcast-id",
        broadcast_id,
    ]
    out_path, err_path = bench.workdir / "send.out", bench.workdir / "send.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=bench.workdir, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # reaped here, with its own rusage
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.stderr.write(err_path.read_text())
        raise RuntimeError(f"threadcast send exited {child.returncode}; its stderr is above")
    if broadcast_id not in out_path.read_text():
        raise RuntimeError(f"unexpected output: {out_path.read_text()!r}")
    return {
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def check(bench: Rig, broadcast_id: str, total: int) -> None:
    """Every delivery committed and in the gate: a fast run that lost some is no figure."""
    ledger = bench.ledger()
    try:
        query = select(func.count()).where(deliveries.c.broadcast_id == broadcast_id)
        with ledger.engine.connect() as conn:
            written = conn.execute(query).scalar_one()
    finally:
        ledger.close()
    client = redis.Redis.from_url(bench.settings.redis_url)
    known = client.hlen(keys.KNOWN)
    client.close()
    if written != total or known != total:
        raise RuntimeError(
            f"{broadcast_id}: {written} in the ledger, {known} in the gate, expected {total}"
        )


def one_run(backend: str, total: int) -> dict[str, float]:
    database, drop = _database(backend)
    try:
        with rig(database_url=database) as bench:
            tenants = bench.sign_in(20)
            path = bench.workdir / "targets.csv"
            write_targets(path, tenants, total)
            broadcast_id = f"bench-{uuid.uuid4().hex[:8]}"
            figures = run_cli(bench, path, broadcast_id)
            check(bench, broadcast_id, total)
            figures["file_mb"] = path.stat().st_size / 1e6
            return figures
    finally:
        drop()


def measure(backend: str, total: int, runs: int) -> dict[str, Any]:
    results = [one_run(backend, total) for _ in range(runs)]
    return {
        "backend": backend,
        "targets": total,
        "file_mb": round(results[0]["file_mb"], 1),
        "seconds": summary([r["seconds"] for r in results]),
        "cli_peak_mb": summary([r["peak_mb"] for r in results]),
        "cli_cpu_seconds": summary([r["cpu_seconds"] for r in results]),
    }


def table(report: list[dict[str, Any]]) -> str:
    lines = [
        "| ledger | targets | figure | median | min | max | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for found in report:
        for key in ("seconds", "cli_peak_mb", "cli_cpu_seconds"):
            v = found[key]
            lines.append(
                f"| {found['backend']} | {found['targets']:,} | {key} | {v['median']} "
                f"| {v['min']} | {v['max']} | {v['runs']} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=1_000_000, help="rows in the CSV file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--backend",
        action="append",
        choices=["sqlite", "postgresql"],
        help="repeat for both (default: both)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    report = [measure(b, args.targets, args.runs) for b in args.backend or ["sqlite", "postgresql"]]
    print(
        json.dumps(
            {"enqueue_file": report, "load_before": load_before, "load_after": os.getloadavg()},
            indent=2,
        )
    )
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
