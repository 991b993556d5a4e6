"""All of a running simulator's in-memory state, in one place, so reset has one meaning."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clock import Clock
from simulator.config import SimConfig
from simulator.counters import Counters
from simulator.devicecodes import DeviceCodeStore
from simulator.directory import Directory
from simulator.faults import FaultInjector
from simulator.issued import IssuedTokens
from simulator.knobs import Knobs
from simulator.posts import PostLog
from simulator.sessions import SessionStore
from simulator.throttle import Throttle


@dataclass(frozen=True, slots=True)
class SimState:
    posts: PostLog
    counters: Counters
    device_codes: DeviceCodeStore
    sessions: SessionStore
    throttle: Throttle
    faults: FaultInjector
    issued: IssuedTokens
    directory: Directory

    @classmethod
    def create(cls, config: SimConfig, clock: Clock) -> SimState:
        issued = IssuedTokens()
        return cls(
            posts=PostLog(),
            counters=Counters(),
            device_codes=DeviceCodeStore(config.device_approve_delay, clock),
            sessions=SessionStore(config.refresh_grace, clock, issued),
            throttle=Throttle(config.knobs.limits, clock),
            faults=FaultInjector(config.knobs.faults),
            issued=issued,
            directory=Directory(config.knobs.graph),
        )

    @property
    def knobs(self) -> Knobs:
        return Knobs(self.throttle.limits, self.faults.settings, self.directory.settings)

    def configure(self, knobs: Knobs) -> None:
        self.throttle.configure(knobs.limits)
        self.faults.configure(knobs.faults)
        self.directory.configure(knobs.graph)

    def reset(self) -> None:
        """Forget posts, counters, throttle windows and fault counts.

        Sign-ins, revocations, the issued-token list, the knobs, the CA and keys stay, and so
        does the directory (consent, team membership, missing channels): it describes the
        tenants, not what a rehearsal measured.
        """
        self.posts.reset()
        self.counters.reset()
        self.throttle.reset()
        self.faults.reset()
