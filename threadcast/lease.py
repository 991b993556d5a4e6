"""A leader lease in Redis: one holder at a time (the scheduler, the dispatcher), replaced
soon after it dies.

``SET key holder NX PX ttl`` takes a free lease; the holder renews it with a compare-and-renew
script and drops it on shutdown with compare-and-delete, so a scheduler that lost the lease
can neither extend nor delete its successor's. A holder that dies stops renewing; the key
expires after ``ttl`` and a follower (trying on every tick) takes it.

The holder also keeps a local deadline: it acts only until ``ttl * (1 - SAFETY)`` after the
start of its last successful renewal, measured on its own monotonic clock. If Redis cannot
be reached, or renewal finds another holder, it stops acting at once -- before Redis lets
anyone else take over. (Every job is idempotent besides, so even two leaders overlapping
would release each occurrence once; the lease keeps that from being the normal case.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from importlib import resources

import redis

log = logging.getLogger("threadcast.lease")

#: Fraction of the lease kept as a margin against clock drift and Redis round trips.
SAFETY = 0.2


def holder_id() -> str:
    """This process's name in the lease: host and pid for operators, a token for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLease:
    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl: float,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self.key = key
        self.ttl = ttl
        self.holder = holder or holder_id()
        self._monotonic = monotonic
        self._held = False
        self._renewed_at = 0.0
        self._valid_until = 0.0
        files = resources.files(__package__)
        self._renew = client.register_script((files / "lease_renew.lua").read_text())
        self._resign = client.register_script((files / "lease_resign.lua").read_text())

    def keep(self) -> bool:
        """Take the lease if it is free or renew it if ours; True while we may act.

        Renews at most every quarter of the lease; cheap to call on every tick.
        """
        started = self._monotonic()
        if self.valid() and started - self._renewed_at < self.ttl / 4:
            return True
        ms = int(self.ttl * 1000)
        try:
            if self._held:
                self._held = bool(self._renew(keys=[self.key], args=[self.holder, ms]))
            else:
                self._held = bool(self._redis.set(self.key, self.holder, nx=True, px=ms))
        except redis.RedisError as exc:
            log.warning("lease %s: Redis unreachable (%s)", self.key, type(exc).__name__)
            return self.valid()  # unconfirmed: act only while the last confirmed term lasts
        if self._held:
            self._renewed_at = started
            self._valid_until = started + self.ttl * (1 - SAFETY)
        return self._held

    def valid(self) -> bool:
        """Whether this process may still act as leader (no Redis call)."""
        return self._held and self._monotonic() < self._valid_until

    def resign(self) -> None:
        """Give the lease up if ours (clean shutdown: a follower takes over on its next tick)."""
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(redis.RedisError):  # else it expires within the lease time
            self._resign(keys=[self.key], args=[self.holder])
