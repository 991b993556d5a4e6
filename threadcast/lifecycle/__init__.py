"""One owner for a delivery's life: every transition that touches both the ledger and the gate.

Producer, HTTP API, scheduler and worker call this package, never the ledger's delivery
writes or the gate (``threadcast.dispatch``) themselves. docs/ARCHITECTURE.md draws it.

- :class:`Intake` (producer side): accept a broadcast, send a scheduled one when due, cancel,
  retry, resume after a sign-in -- each a ledger transaction, then the gate.
- :class:`Handling` (worker side): take a delivery (claim, body, permit; given back when
  anything fails before the POST) and settle it (finish, cool a throttled scope down, park a
  retry), and the ways a delivery waits (a sign-in, its tenant's token trouble).
- :mod:`threadcast.lifecycle.sweeps` (scheduler): what a dead worker or a lost Redis left.
- :mod:`threadcast.lifecycle.gates`: the only place the gate's two parts
  (:class:`~threadcast.dispatch.Entrance`, :class:`~threadcast.dispatch.Keeper`) are made for
  producer, scheduler and worker.
"""

from __future__ import annotations

from threadcast.lifecycle.handling import Handling, Left
from threadcast.lifecycle.intake import Accepted, Intake
from threadcast.lifecycle.publisher import Publisher

__all__ = ["Accepted", "Handling", "Intake", "Left", "Publisher"]
