"""What the gate's tests share: a Gate (both of its parts, the entrance and the keeper, in
one object) on the tests' Redis with small limits and a short window (nothing in the logic
depends on its length), and deliveries to put in it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Entrance, Keeper, Limits
from threadcast.guard import AdaptiveGuard


class Gate(Entrance, Keeper):
    """The entrance and the keeper over one Redis client, as the tests drive them: put
    deliveries in, release them, start, park, ... (the product makes each part where it is
    used: threadcast/lifecycle/gates.py)."""

    def __init__(
        self,
        client: redis.Redis,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        guard: AdaptiveGuard | None = None,
    ) -> None:
        Entrance.__init__(self, client, clock)
        Keeper.__init__(self, client, limits or _LIMITS, guard)


_LIMITS = Limits(
    window=0.25, app=100, tenant=20, team=4, channel=1, channel_daily=3000, overrides={}
)
MakeGate = Callable[..., Gate]
WINDOW = 0.25


def guid() -> str:
    return str(uuid.uuid4())


def to(tenant: str, team: str, channel: str, broadcast: str = "b") -> DeliveryMessage:
    return DeliveryMessage(guid(), broadcast, tenant, team, channel)


def gate_maker(client: redis.Redis) -> MakeGate:
    """``make(clock=None, **limits)``: a Gate with these limits over the defaults, written
    where the release script reads them."""

    def make(clock: Callable[[], float] | None = None, **limits: object) -> Gate:
        base = {
            "window": WINDOW,
            "app": 100,
            "tenant": 20,
            "team": 4,
            "channel": 1,
            "channel_daily": 3000,
            "overrides": {},
        }
        gate = Gate(client, Limits(**(base | limits)), clock=clock)  # type: ignore[arg-type]
        gate.write_limits()
        return gate

    return make
