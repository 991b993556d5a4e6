"""Delivery states (see DESIGN.md) and which of them are final or may be claimed."""

from __future__ import annotations

import enum


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
