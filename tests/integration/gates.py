"""What the gate's tests share: a Gate on the tests' Redis with small limits and a short
window (nothing in the logic depends on its length), and deliveries to put in it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate, Limits

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
