"""The dispatcher's heartbeat in Redis: proof, readable from anywhere, that it still turns.

The worker process holding the dispatcher's lease writes it on its turns (at most once a
second) with a TTL; ``threadcast doctor``, every worker's ``/healthz`` and ``/metrics`` read
it. Its age is measured on Redis's clock (the TTL left), so no two hosts' clocks are
compared. A missing heartbeat means no dispatcher turned for ``DISPATCHER_HEARTBEAT_TTL_SECONDS``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis

from threadcast.constants import DISPATCHER_HEARTBEAT_KEY, DISPATCHER_HEARTBEAT_TTL_SECONDS

#: A heartbeat older than this says the dispatcher is stuck (it beats every second at most,
#: and at least every few seconds while it holds the lease).
STALE_AFTER_SECONDS = 15.0
_EVERY = 1.0  # seconds between two writes


@dataclass(frozen=True)
class Beat:
    holder: str  # host:pid:token of the process that holds the lease
    released: int  # deliveries released to the workers by this holder since it started
    restarts: int  # times this holder's dispatcher loop ended and was started again
    error: str | None  # the last error a turn met, while it lasts (None after a good turn)


@dataclass(frozen=True)
class Reading:
    beat: Beat
    age: float  # seconds since it was written, on Redis's clock

    @property
    def stale(self) -> bool:
        return self.age > STALE_AFTER_SECONDS


class Heartbeat:
    """The writer: cheap to call on every turn, never raises."""

    def __init__(self, client: redis.Redis, monotonic: Callable[[], float] = time.monotonic):
        self._redis = client
        self._monotonic = monotonic
        self._last = -_EVERY

    def beat(self, beat: Beat, *, force: bool = False) -> None:
        now = self._monotonic()
        if not force and now - self._last < _EVERY:
            return
        try:
            self._redis.set(
                DISPATCHER_HEARTBEAT_KEY,
                json.dumps(asdict(beat)),
                px=int(DISPATCHER_HEARTBEAT_TTL_SECONDS * 1000),
            )
            self._last = now
        except redis.RedisError:
            pass  # Redis away: the dispatcher's turns say so themselves; the beat just ages


def read(client: redis.Redis) -> Reading | None:
    """The last heartbeat and its age; None when no dispatcher turned within its TTL."""
    pipe = client.pipeline(transaction=False)
    pipe.get(DISPATCHER_HEARTBEAT_KEY)
    pipe.pttl(DISPATCHER_HEARTBEAT_KEY)
    raw, ttl_ms = pipe.execute()
    if raw is None or ttl_ms is None or ttl_ms < 0:
        return None
    try:
        data = json.loads(raw)
        error = data.get("error")
        beat = Beat(
            str(data["holder"]),
            int(data["released"]),
            int(data["restarts"]),
            None if error is None else str(error),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return Reading(beat, max(0.0, DISPATCHER_HEARTBEAT_TTL_SECONDS - ttl_ms / 1000))
