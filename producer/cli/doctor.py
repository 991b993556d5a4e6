"""``threadcast doctor``: check the deployment before a big broadcast (producer/doctor.py)."""

from __future__ import annotations

import argparse
from typing import Any

from producer import doctor


def register(commands: Any) -> None:
    check = commands.add_parser(
        "doctor", help="check settings, Redis, the ledger, sign-ins, Graph and the workers"
    )
    check.add_argument("--json", action="store_true", help="one JSON object")
    check.add_argument("--verbose", action="store_true", help="one line for every tenant")
    check.set_defaults(run=_doctor)


def _doctor(args: argparse.Namespace, _rest: list[str]) -> int:
    # Every problem, a broken setting included, is a line of the report (never an exception),
    # so --json always prints its object.
    results = doctor.diagnose()
    print(doctor.dumps(results) if args.json else doctor.render(results, verbose=args.verbose))
    return 1 if doctor.failed(results) else 0
