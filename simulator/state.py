"""All of a running simulator's in-memory state, in one place, so reset has one meaning."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clock import Clock
from simulator.config import SimConfig
from simulator.counters import Counters
from simulator.devicecodes import DeviceCodeStore
from simulator.posts import PostLog
from simulator.sessions import SessionStore


@dataclass(frozen=True, slots=True)
class SimState:
    posts: PostLog
    counters: Counters
    device_codes: DeviceCodeStore
    sessions: SessionStore

    @classmethod
    def create(cls, config: SimConfig, clock: Clock) -> SimState:
        return cls(
            posts=PostLog(),
            counters=Counters(),
            device_codes=DeviceCodeStore(config.device_approve_delay, clock),
            sessions=SessionStore(config.refresh_grace, clock),
        )

    def reset(self) -> None:
        """Forget posts and counters; sign-ins, revocations, the CA and keys stay."""
        self.posts.reset()
        self.counters.reset()
