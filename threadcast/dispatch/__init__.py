"""Dispatch: where deliveries wait in Redis until every rate limit lets them go."""

from __future__ import annotations

from threadcast.dispatch.gate import Gate, Release, Start
from threadcast.dispatch.limits import Limits

__all__ = ["Gate", "Limits", "Release", "Start"]
