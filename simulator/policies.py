"""The seam where throttling and fault injection plug into the message endpoints.

A policy sees every valid, authenticated message POST in three synchronous steps, run for
all policies in order, with no ``await`` in between, so that no other request can slip in
between counting a request and deciding on it:

1. ``observe``: note the request (e.g. a Retry-After violation); never refuses;
2. ``admit``: refuse it by raising :class:`~simulator.errors.GraphError` (429, 503, 504) or
   :class:`~simulator.errors.ConnectionDropError`, or count it as admitted;
3. ``hold``: once every policy admitted it, just before it is recorded: how many seconds to
   hold back the answer (``None`` for no delay). The post then exists although the client
   may never hear so.

The shipped chain is faults, then throttle (:mod:`simulator.faults`, :mod:`simulator.throttle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from simulator.posts import PostAttempt


class Policy(Protocol):
    def observe(self, attempt: PostAttempt) -> None: ...

    def admit(self, attempt: PostAttempt) -> None: ...

    def hold(self, attempt: PostAttempt) -> float | None: ...


class PolicyChain:
    """Runs the policies in order; the first one to refuse decides the answer."""

    def __init__(self, policies: Sequence[Policy] = ()) -> None:
        self._policies = tuple(policies)

    def admit(self, attempt: PostAttempt) -> float | None:
        """Observe, admit, hold: raises if refused, else the seconds to hold the answer back."""
        for policy in self._policies:
            policy.observe(attempt)
        for policy in self._policies:
            policy.admit(attempt)
        held = [seconds for p in self._policies if (seconds := p.hold(attempt)) is not None]
        return max(held) if held else None
