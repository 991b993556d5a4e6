"""The gate: where deliveries wait in Redis until every rate limit lets them go.

Two parts: the :class:`Entrance` (producers put deliveries in, the sweeps ask where they
are) and the :class:`Keeper` (the dispatcher lets them out with permits, workers confirm,
park and drop them). Only threadcast.lifecycle makes either (threadcast/lifecycle/gates.py).
"""

from __future__ import annotations

from threadcast.dispatch.entrance import Entrance
from threadcast.dispatch.keeper import Keeper, Release, Start
from threadcast.dispatch.limits import Limits

__all__ = ["Entrance", "Keeper", "Limits", "Release", "Start"]
