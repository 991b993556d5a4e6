"""Fault injection on the message endpoints: what a client must survive, on demand.

Each fault hits a fraction of the valid, authenticated message POSTs, drawn independently from
one seedable random generator, in this order; the first that hits decides:

* before throttling (a faulted request is not counted in any window, and is not recorded):
  ``fault_drop`` (the connection is cut, no answer), ``fault_503`` (503 with Retry-After),
  ``fault_503_bare`` (503 without), ``fault_504`` (504);
* after throttling accepted the request: ``fault_accept_delay``: the post IS recorded (marked
  ``delayed_answer``), then its answer is held back longer than a client waits, so the client
  times out not knowing that its message went out: the case at-most-once delivery is about.

Latency (``latency_ms`` plus up to ``latency_jitter_ms``) is added to every POST's answer.
Message edits (PATCH, softDelete) are faulted like posts; the audience reads (GET) are not.
The random sequence restarts from ``fault_seed`` whenever the settings change or the
simulator is reset, so a seeded rehearsal replays the same faults.
"""

from __future__ import annotations

import random
from collections import Counter

from simulator.errors import ConnectionDropError, GraphError
from simulator.knobs import FaultSettings
from simulator.posts import READS, PostAttempt

FAULT_NAMES = ("503", "503_bare", "504", "accepted_then_delayed", "dropped")


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self.counts: Counter[str] = Counter()
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.fault_seed)  # noqa: S311 - chaos, not cryptography
        self._refusing = bool(
            settings.fault_drop
            or settings.fault_503
            or settings.fault_503_bare
            or settings.fault_504
        )

    def reset(self) -> None:
        self.counts.clear()
        self._rng.seed(self.settings.fault_seed)

    def counts_json(self) -> dict[str, int]:
        return {name: self.counts[name] for name in FAULT_NAMES}

    def observe(self, attempt: PostAttempt) -> None:
        pass

    def admit(self, attempt: PostAttempt) -> None:
        """Refuse the request with a fault, or let it through to the throttle."""
        if not self._refusing or attempt.endpoint in READS:
            return
        settings = self.settings
        if self._hits(settings.fault_drop):
            self.counts["dropped"] += 1
            raise ConnectionDropError("fault_drop")
        if self._hits(settings.fault_503):
            self.counts["503"] += 1
            raise _unavailable({"Retry-After": str(settings.fault_retry_after)})
        if self._hits(settings.fault_503_bare):
            self.counts["503_bare"] += 1
            raise _unavailable({})
        if self._hits(settings.fault_504):
            self.counts["504"] += 1
            raise GraphError(
                504, "GatewayTimeout", "The gateway timed out waiting for the service (simulated)."
            )

    def hold(self, attempt: PostAttempt) -> float | None:
        """Seconds to hold back the answer of a post that is being recorded, or None."""
        if attempt.endpoint in READS:
            return None
        if not self._hits(self.settings.fault_accept_delay):
            return None
        self.counts["accepted_then_delayed"] += 1
        return self.settings.fault_accept_delay_seconds

    def latency(self) -> float:
        """Seconds to add before answering a POST."""
        settings = self.settings
        milliseconds = settings.latency_ms
        if settings.latency_jitter_ms:
            milliseconds += self._rng.uniform(0.0, settings.latency_jitter_ms)
        return milliseconds / 1000.0

    def _hits(self, fraction: float) -> bool:
        # No draw for a fault that is off, so switching one on does not shift the others' draws
        # any more than it must.
        return fraction > 0.0 and self._rng.random() < fraction


def _unavailable(headers: dict[str, str]) -> GraphError:
    return GraphError(
        503,
        "ServiceUnavailable",
        "The service is temporarily unavailable (simulated). Retry later.",
        headers=headers,
    )
