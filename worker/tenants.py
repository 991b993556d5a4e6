"""A tenant whose token cannot be had just now: only its deliveries wait, with backoff.

The identity platform down, the tenant's refresh lock held for long, Redis refusing its
cache: each is the tenant's trouble. Its deliveries go back to the gate for a while (the
reason noted on them in the ledger, for ``threadcast status``), and for that while this
process parks them at once instead of asking again, so one tenant's outage neither holds a
thread nor slows the other tenants' deliveries in the same process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from threadcast.contract import DeliveryMessage
from threadcast.lifecycle import Handling

log = logging.getLogger("threadcast.worker")

REASON = "token_unavailable"
_FIRST_BACKOFF = 2.0  # seconds; doubles with each failure in a row, up to the cap
_BACKOFF_CAP = 60.0


@dataclass(frozen=True)
class _Trouble:
    until: float  # monotonic
    failures: int
    reason: str


class TenantTroubles:
    def __init__(self, handling: Handling, clock: Callable[[], float] = time.monotonic) -> None:
        self._handling = handling
        self._clock = clock
        self._troubles: dict[str, _Trouble] = {}
        self._guard = threading.Lock()

    def waiting(self, tenant: str) -> float | None:
        """Seconds the tenant's deliveries still wait here, or None when it may be asked."""
        trouble = self._troubles.get(tenant)
        if trouble is None:
            return None
        left = trouble.until - self._clock()
        return left if left > 0 else None

    def failed(self, tenant: str, reason: str) -> float:
        """Its token could not be had: how long its deliveries wait now (growing)."""
        with self._guard:
            before = self._troubles.get(tenant)
            failures = 1 if before is None else before.failures + 1
            wait = min(_BACKOFF_CAP, _FIRST_BACKOFF * 2.0 ** (failures - 1))
            self._troubles[tenant] = _Trouble(self._clock() + wait, failures, reason)
        log.warning("tenant %s: no token (%s); its deliveries wait %.0f s", tenant, reason, wait)
        return wait

    def recovered(self, tenant: str) -> None:
        if tenant in self._troubles:
            with self._guard:
                self._troubles.pop(tenant, None)

    def park(self, messages: list[DeliveryMessage], wait: float) -> None:
        """Back to the gate until the wait is over, the reason noted in the ledger."""
        if not messages:
            return
        tenant = messages[0].tenant
        trouble = self._troubles.get(tenant)
        reason = trouble.reason if trouble else "its token could not be had"
        self._handling.wait_out(messages, REASON, reason, wait)
