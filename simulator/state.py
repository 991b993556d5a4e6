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
from simulator.messages import MessageStore
from simulator.posts import PostLog
from simulator.sessions import SessionStore
from simulator.teamsdir import TeamsDirectory
from simulator.throttle import Throttle
from simulator.v1knobs import V1Knobs


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
    messages: MessageStore
    teams: TeamsDirectory

    @classmethod
    def create(cls, config: SimConfig, clock: Clock) -> SimState:
        issued = IssuedTokens()
        counters = Counters()
        return cls(
            posts=PostLog(),
            counters=counters,
            device_codes=DeviceCodeStore(config.device_approve_delay, clock),
            sessions=SessionStore(config.refresh_grace, clock, issued),
            throttle=Throttle(config.knobs.limits, clock, config.v1.limits),
            faults=FaultInjector(config.knobs.faults),
            issued=issued,
            directory=Directory(config.knobs.graph),
            messages=MessageStore(counters.messages, parts=config.v1.message_parts),
            teams=TeamsDirectory(config.v1.audience),
        )

    @property
    def knobs(self) -> Knobs:
        return Knobs(self.throttle.limits, self.faults.settings, self.directory.settings)

    def configure(self, knobs: Knobs) -> None:
        self.throttle.configure(knobs.limits)
        self.faults.configure(knobs.faults)
        self.directory.configure(knobs.graph)

    @property
    def v1_knobs(self) -> V1Knobs:
        return V1Knobs(self.messages.parts, self.throttle.operations, self.teams.settings)

    def configure_v1(self, knobs: V1Knobs) -> None:
        self.messages.parts = knobs.message_parts
        self.throttle.configure_operations(knobs.limits)
        self.teams.configure(knobs.audience)

    def reset(self) -> None:
        """Forget posts, counters, throttle windows and fault counts.

        Sign-ins, revocations, the issued-token list, the knobs, the CA and keys stay, and so
        does the directory (consent, team membership, missing channels, the teams): it
        describes the tenants, not what a rehearsal measured. The v1.0 messages and their
        versions go with the posts.
        """
        self.posts.reset()
        self.messages.reset()
        self.counters.reset()
        self.throttle.reset()
        self.faults.reset()
