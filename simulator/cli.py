"""``python -m simulator``: the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from simulator.config import LOG_LEVELS, SimConfig
from simulator.errors import SimulatorError
from simulator.knobs import KNOBS, THROTTLE_DEFAULTS, Knob, KnobError, Knobs
from simulator.server import serve
from simulator.v1knobs import V1_KNOBS, V1Knobs

_DEFAULTS = SimConfig()


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, got {raw}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {raw}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535 (0 picks a free port), got {raw}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A local Microsoft identity platform + Microsoft Graph (chatthreads, "
        "channel messages) over HTTPS, for rehearsing threadcast broadcasts.",
    )
    add = parser.add_argument
    add("--host", default=_DEFAULTS.host, help="address to listen on (default %(default)s)")
    add(
        "--port",
        type=_port,
        default=_DEFAULTS.port,
        help="0 picks a free port (default %(default)s)",
    )
    add(
        "--state-dir",
        type=Path,
        default=_DEFAULTS.state_dir,
        help="where ca.pem (trust it via THREADCAST_CA_BUNDLE) and the server certificate live; "
        "an existing CA there is reused (default %(default)s)",
    )
    add(
        "--ready-file",
        type=Path,
        default=None,
        help="once listening, atomically write the URLs, CA path and pid here as JSON",
    )
    add(
        "--device-approve-delay",
        type=_seconds,
        default=_DEFAULTS.device_approve_delay,
        metavar="SECONDS",
        help="device codes are approved this long after issue (default %(default)s)",
    )
    add(
        "--token-lifetime",
        type=_positive_int,
        default=_DEFAULTS.token_lifetime,
        metavar="SECONDS",
        help="access token lifetime (default %(default)s)",
    )
    add(
        "--refresh-grace",
        type=_seconds,
        default=_DEFAULTS.refresh_grace,
        metavar="SECONDS",
        help="how long a rotated-out refresh token is still accepted (default %(default)s)",
    )
    add("--log-level", choices=LOG_LEVELS, default=_DEFAULTS.log_level)
    add(
        "--test-clock",
        action="store_true",
        help="for tests: serve POST /_sim/clock, which moves the simulator's clock forward "
        "(a rehearsal must keep real time: off by default)",
    )
    _add_knobs(parser.add_argument_group("throttling, faults, Graph today (all off by default)"))
    _add_flags(
        parser.add_argument_group("Graph v1.0 message parts, edits and audience reads"), V1_KNOBS
    )
    return parser


def _add_knobs(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--throttle-defaults",
        action="store_true",
        help="enforce every documented limit (message posts: 500, 50, 4, 1, 3000; edits and "
        "audience reads: see --edit-app-rps and the flags after it); flags given win",
    )
    _add_flags(group, KNOBS)


def _add_flags(group: argparse._ArgumentGroup, knobs: tuple[Knob, ...]) -> None:
    for knob in knobs:
        # Absent unless given, so that --throttle-defaults can tell what was set explicitly.
        # A switch given bare is true; `--chatthreads-removed false` still reads its value.
        group.add_argument(
            knob.flag,
            dest=knob.name,
            type=_KnobValue(knob),
            default=argparse.SUPPRESS,
            metavar=knob.metavar,
            help=knob.help,
            nargs="?" if knob.is_switch else None,
            const=True if knob.is_switch else None,
        )


class _KnobValue:
    """argparse ``type=``: the flag's text read as the JSON value the admin API would take."""

    def __init__(self, knob: Knob) -> None:
        self._knob = knob
        self.__name__ = knob.name  # argparse names the type in its error messages

    def __call__(self, raw: str) -> object:
        try:
            value: object = json.loads(raw)
        except ValueError:
            value = raw  # not JSON: the knob's own check says what it wants instead
        try:
            return self._knob.parse(value)
        except KnobError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def config_from(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        ready_file=args.ready_file,
        device_approve_delay=args.device_approve_delay,
        token_lifetime=args.token_lifetime,
        refresh_grace=args.refresh_grace,
        log_level=args.log_level,
        test_clock=args.test_clock,
        knobs=Knobs().changed(
            {
                THROTTLE_DEFAULTS: args.throttle_defaults,
                **{knob.name: getattr(args, knob.name) for knob in KNOBS if knob.name in args},
            }
        ),
        v1=V1Knobs().changed(
            {
                "throttle_defaults": args.throttle_defaults,
                **{knob.name: getattr(args, knob.name) for knob in V1_KNOBS if knob.name in args},
            }
        ),
    )


def main(argv: list[str] | None = None) -> int:
    config = config_from(build_parser().parse_args(argv))
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(config)
    except SimulatorError as exc:
        print(f"simulator: error: {exc}", file=sys.stderr)
        return 1
    return 0
