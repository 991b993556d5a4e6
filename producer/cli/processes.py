"""Commands that run a long-lived process: ``worker``, ``sim``, ``demo``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from producer import accounts
from producer.supervise import Supervisor
from threadcast.constants import QUEUE
from threadcast.settings import load_settings


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run a Celery worker (extra args go to celery)")
    worker.set_defaults(run=_worker)
    sim = commands.add_parser("sim", help="run the Microsoft identity + Graph simulator")
    sim.set_defaults(run=_sim)
    demo = commands.add_parser("demo", help="run the whole pipeline against the simulator")
    demo.add_argument(
        "--scenario",
        choices=("seed", "today", "announce"),
        default="seed",
        help="seed: the simulator answers the seed's beta chatthreads endpoint (default); "
        "today: it answers as live Graph does now (that segment removed), and the demo shows "
        "the deployment's one switch to v1.0 channel messages; announce: a card with an image, "
        "a subject and urgent importance to the 300 channels an audience resolves to, then "
        "edited and recalled (Graph as today, every documented limit enforced)",
    )
    demo.set_defaults(run=_demo)


def _worker(_args: argparse.Namespace, rest: list[str]) -> int:
    settings = load_settings()
    accounts.check_key(settings)
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", QUEUE]
    if not any(a.startswith(("--loglevel", "-l")) for a in rest):
        command += ["--loglevel", settings.log_level]
    processes = settings.worker_processes or os.cpu_count() or 1
    if processes == 1:
        os.execv(sys.executable, command + rest)  # noqa: S606 - replaces this process on purpose
    env = dict(os.environ)
    env.pop("THREADCAST_WORKER_READY_FILE", None)
    # The cap is the command's: its processes share it.
    env["THREADCAST_MAX_IN_FLIGHT"] = str(-(-settings.max_in_flight // processes))
    supervisor = Supervisor(command + rest, processes, env, settings.worker_ready_file)
    return supervisor.run()


def _sim(_args: argparse.Namespace, rest: list[str]) -> int:
    os.execv(sys.executable, [sys.executable, "-m", "simulator", *rest])  # noqa: S606


def _demo(args: argparse.Namespace, _rest: list[str]) -> int:
    # The simulator is only needed here.
    if args.scenario == "announce":
        from producer import demo_announce

        return demo_announce.main()
    from producer import demo

    return demo.main(args.scenario)
