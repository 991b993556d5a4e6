"""The simulator's configuration: one immutable object built by the CLI, read by everyone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulator.knobs import Knobs
from simulator.v1knobs import V1Knobs

DEFAULT_PORT = 8443
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything ``python -m simulator`` can be told; the defaults are the CLI's defaults."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    state_dir: Path = Path(".sim")
    ready_file: Path | None = None
    device_approve_delay: float = 2.0
    token_lifetime: int = 3600
    refresh_grace: float = 0.0
    log_level: str = "info"
    test_clock: bool = False
    """Serve ``/_sim/clock``, which moves the simulator's clock: for tests, never rehearsals."""
    knobs: Knobs = field(default_factory=Knobs)
    """Throttle limits and faults: the part the admin API can change while running."""
    v1: V1Knobs = field(default_factory=V1Knobs)
    """Message parts, edit and audience-read limits, the teams directory (``/_sim/config/v1``)."""
