"""One delivery claimed or read at a time, as the ledger tests ask: the product claims in
batches (``DeliveryBook.claim_many``) and reads states through its reports."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from threadcast.ledger import Claim, DeliveryState, Ledger, Refusal
from threadcast.ledger.schema import deliveries


def claim(
    ledger: Ledger,
    delivery_id: str,
    worker: str,
    client_request_id: str,
    lease: timedelta,
    now: datetime,
    endpoint: str | None = None,
) -> Claim | Refusal:
    """Take one delivery for one attempt, or say why not."""
    [taken] = ledger.deliveries.claim_many(
        [(delivery_id, client_request_id)], worker, lease, now, endpoint
    )
    return taken


def state(ledger: Ledger, delivery_id: str) -> DeliveryState | None:
    """The delivery's state in the ledger (None: no such delivery)."""
    query = select(deliveries.c.state).where(deliveries.c.id == delivery_id)
    with ledger.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else DeliveryState(found)
