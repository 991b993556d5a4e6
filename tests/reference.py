"""Reference forms the tests check the fast code paths against."""

from __future__ import annotations

import uuid

from threadcast.ids import DELIVERY_NAMESPACE


def delivery_id(broadcast: str, tenant: str, group: str, channel: str) -> str:
    """The delivery id by the book: UUIDv5 of the broadcast and its target, which
    ``threadcast.ids.delivery_ids`` computes faster."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, "\x1f".join((broadcast, tenant, group, channel))))
