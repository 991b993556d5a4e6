"""The settings a running simulator can change: throttle limits, fault injection, and how
Graph answers (``chatthreads_removed``).

Each knob is defined once here, with its validation and help text; the command line
(``--app-rps``) and the admin API (``POST /_sim/config {"app_rps": ...}``) both read this
table, so the two can never disagree. Everything defaults to off: a simulator started without
these flags behaves exactly as one built before they existed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """Requests per second (sliding 1 s window) or per UTC day; 0 means not enforced."""

    app_rps: int = 0
    tenant_rps: int = 0
    team_rps: int = 0
    channel_rps: int = 0
    channel_daily: int = 0

    @property
    def enabled(self) -> bool:
        return bool(
            self.app_rps
            or self.tenant_rps
            or self.team_rps
            or self.channel_rps
            or self.channel_daily
        )


DOCUMENTED_LIMITS = ThrottleLimits(
    app_rps=500, tenant_rps=50, team_rps=4, channel_rps=1, channel_daily=3000
)
"""The Microsoft Teams service limits for posting channel messages, as Graph documents them
(``channel_rps``: 1 request/s per app per tenant on a channel, and 1 POST/s per user in a
channel; every post of a tenant is by its one signed-in user, so both are the same 1/s)."""


@dataclass(frozen=True, slots=True)
class GraphSettings:
    """How Graph answers, beyond throttling and faults."""

    chatthreads_removed: bool = False
    """The beta ``chatthreads`` segment is gone, as on the live service since about 2020."""


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Fractions (0..1) of Graph POSTs that fail, and the delays the simulator adds."""

    fault_503: float = 0.0
    fault_503_bare: float = 0.0
    fault_504: float = 0.0
    fault_retry_after: int = 1
    fault_drop: float = 0.0
    fault_accept_delay: float = 0.0
    fault_accept_delay_seconds: float = 30.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_seed: int | None = None


class KnobError(ValueError):
    """A knob's value is out of range or of the wrong type; the message names the knob."""


def _number(value: object) -> float:
    # bool is an int in Python, but `true` is not a number on the wire.
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise KnobError(f"must be a number, got {json.dumps(value)}")
    return float(value)


def count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KnobError(f"must be a non-negative integer, got {json.dumps(value)}")
    return value


def fraction(value: object) -> float:
    number = _number(value)
    if not 0.0 <= number <= 1.0:
        raise KnobError(f"must be a fraction between 0 and 1, got {json.dumps(value)}")
    return number


def duration(value: object) -> float:
    number = _number(value)
    if not 0.0 <= number < math.inf:
        raise KnobError(f"must be a non-negative number, got {json.dumps(value)}")
    return number


def switch(value: object) -> bool:
    if not isinstance(value, bool):
        raise KnobError(f"must be true or false, got {json.dumps(value)}")
    return value


def seed(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise KnobError(f"must be an integer or null, got {json.dumps(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Knob:
    name: str
    parse: Callable[[object], object]
    metavar: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        """On the command line, the bare flag means true."""
        return self.parse is switch


KNOBS: tuple[Knob, ...] = (
    Knob("app_rps", count, "N", "requests/s per app across all tenants (documented: 500)"),
    Knob("tenant_rps", count, "N", "requests/s per app per tenant (documented: 50)"),
    Knob("team_rps", count, "N", "requests/s per app on one team and its channels (documented: 4)"),
    Knob("channel_rps", count, "N", "requests/s per app per tenant on one channel (documented: 1)"),
    Knob("channel_daily", count, "N", "messages/UTC day per app per channel (documented: 3000)"),
    Knob("fault_503", fraction, "F", "fraction of Graph POSTs answered 503 with Retry-After"),
    Knob("fault_503_bare", fraction, "F", "fraction of Graph POSTs answered 503, no Retry-After"),
    Knob("fault_504", fraction, "F", "fraction of Graph POSTs answered 504"),
    Knob("fault_retry_after", count, "S", "the Retry-After of --fault-503, seconds (default 1)"),
    Knob("fault_drop", fraction, "F", "fraction of Graph POSTs cut off unanswered and unrecorded"),
    Knob(
        "fault_accept_delay",
        fraction,
        "F",
        "fraction of Graph POSTs recorded as accepted whose answer is held back",
    ),
    Knob(
        "fault_accept_delay_seconds",
        duration,
        "S",
        "how long --fault-accept-delay holds the answer (default 30)",
    ),
    Knob("latency_ms", duration, "MS", "latency added to every Graph POST answer"),
    Knob("latency_jitter_ms", duration, "MS", "up to this much more latency, uniformly random"),
    Knob("fault_seed", seed, "N", "seed of the fault and jitter random draws (reproducible runs)"),
    Knob(
        "chatthreads_removed",
        switch,
        "BOOL",
        "the beta chatthreads endpoint answers 400 BadRequest (segment not found) as live "
        "Graph has since ~2020; the bare flag means true",
    ),
)
KNOBS_BY_NAME = {knob.name: knob for knob in KNOBS}
LIMIT_NAMES = frozenset(field.name for field in dataclasses.fields(ThrottleLimits))
GRAPH_NAMES = frozenset(field.name for field in dataclasses.fields(GraphSettings))
_NOT_FAULTS = LIMIT_NAMES | GRAPH_NAMES
THROTTLE_DEFAULTS = "throttle_defaults"


@dataclass(frozen=True, slots=True)
class Knobs:
    """The current value of every knob."""

    limits: ThrottleLimits = ThrottleLimits()
    faults: FaultSettings = FaultSettings()
    graph: GraphSettings = GraphSettings()

    def to_json(self) -> dict[str, object]:
        return {
            **dataclasses.asdict(self.limits),
            **dataclasses.asdict(self.faults),
            **dataclasses.asdict(self.graph),
        }

    def changed(self, changes: Mapping[str, object]) -> Knobs:
        """These knobs with ``changes`` (knob name → JSON value) applied, all checked first.

        ``throttle_defaults: true`` sets the five documented limits; limits named alongside it
        win. Raises :class:`KnobError` naming the first bad knob; nothing is applied then.
        """
        values = dict(changes)
        limits = self.limits
        if throttle_defaults(values.pop(THROTTLE_DEFAULTS, False)):
            limits = DOCUMENTED_LIMITS
        parsed = {name: parse_setting(KNOBS_BY_NAME, name, value) for name, value in values.items()}
        return Knobs(
            limits=dataclasses.replace(limits, **only(parsed, LIMIT_NAMES)),
            faults=dataclasses.replace(self.faults, **only(parsed, None, _NOT_FAULTS)),
            graph=dataclasses.replace(self.graph, **only(parsed, GRAPH_NAMES)),
        )


def throttle_defaults(value: object) -> bool:
    """The ``throttle_defaults`` switch of a settings change: true or false."""
    if not isinstance(value, bool):
        raise KnobError(f"'{THROTTLE_DEFAULTS}' must be true or false, got {json.dumps(value)}")
    return value


def parse_setting(table: Mapping[str, Knob], name: str, value: object) -> object:
    """One setting of a change, by its knob in ``table``; a KnobError names it."""
    knob = table.get(name)
    if knob is None:
        known = ", ".join([THROTTLE_DEFAULTS, *table])
        raise KnobError(f"unknown setting '{name}'; known: {known}")
    try:
        return knob.parse(value)
    except KnobError as exc:
        raise KnobError(f"'{name}' {exc}") from None


def only(
    values: Mapping[str, object], keep: frozenset[str] | None, drop: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The settings named in ``keep`` (all if None), less those in ``drop``."""
    return {n: v for n, v in values.items() if (keep is None or n in keep) and n not in drop}
