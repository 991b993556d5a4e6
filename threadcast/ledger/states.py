"""Delivery states and which of them are final or may be claimed (docs/ARCHITECTURE.md
draws who moves a delivery between them)."""

from __future__ import annotations

import enum

from threadcast.errors import ValidationError


class DeliveryState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its broadcast's send time
    QUEUED = "queued"  # published, waiting for a worker
    SENDING = "sending"  # claimed by a worker under a lease; the POST may be in flight
    SENT = "sent"  # Graph answered 2xx: never posted again
    RETRYING = "retrying"  # transient failure, will go again
    FAILED = "failed"  # permanent failure or attempts exhausted
    UNKNOWN = "unknown"  # the POST may have reached Graph but no answer came back
    WAITING_AUTH = "waiting_auth"  # the tenant must sign in again
    CANCELLED = "cancelled"


FINAL = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.CANCELLED})
CLAIMABLE = frozenset({DeliveryState.QUEUED, DeliveryState.RETRYING})
CANCELLABLE = frozenset(
    {
        DeliveryState.SCHEDULED,
        DeliveryState.QUEUED,
        DeliveryState.RETRYING,
        DeliveryState.WAITING_AUTH,
    }
)


def parse_states(field: str, raw: str) -> list[DeliveryState]:
    """``"failed,unknown"`` as states; an unknown name is a ValidationError naming it."""
    names = [part.strip() for part in raw.split(",") if part.strip()]
    known = {s.value for s in DeliveryState}
    for name in names:
        if name not in known:
            choices = ", ".join(sorted(known))
            raise ValidationError(field, name, f"is not a state; use one of {choices}")
    if not names:
        raise ValidationError(field, raw, "names no state")
    return [DeliveryState(name) for name in names]


#: An attempt's outcome (not a delivery state) when its answer proved the endpoint gone and
#: the post went on to another endpoint under the same claim.
REROUTED = "rerouted"
