"""The audit trail, streamed: every delivery with all of its attempts, in constant memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import attempts, deliveries

_ROWS_PER_FETCH = 1000

DELIVERY_COLUMNS = (
    deliveries.c.broadcast_id.label("broadcast"),
    deliveries.c.id.label("delivery"),
    deliveries.c.tenant_id.label("tenant"),
    deliveries.c.group_id.label("group"),
    deliveries.c.channel_id.label("channel"),
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.last_status,
    deliveries.c.last_error_code,
    deliveries.c.last_error_message,
    deliveries.c.last_request_id,
    deliveries.c.message_id,
    deliveries.c.sent_at,
    deliveries.c.updated_at,
)
ATTEMPT_COLUMNS = (
    attempts.c.number,
    attempts.c.worker,
    attempts.c.started_at,
    attempts.c.finished_at,
    attempts.c.client_request_id,
    attempts.c.outcome,
    attempts.c.http_status,
    attempts.c.request_id,
    attempts.c.error_code,
    attempts.c.error_message,
    attempts.c.retry_after,
    attempts.c.latency_ms,
    attempts.c.message_id,
    attempts.c.endpoint,
)
_DELIVERY_KEYS = [c.key for c in DELIVERY_COLUMNS]
_ATTEMPT_KEYS = [c.key for c in ATTEMPT_COLUMNS]


@dataclass
class AuditRecord:
    delivery: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)


class AuditTrail:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def records(
        self, broadcast_id: str | None = None, since: datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Deliveries (of one broadcast, or all) changed at or after ``since``, each with its
        attempts in order. One ordered, streamed join: memory does not grow with the rows."""
        query = (
            select(*DELIVERY_COLUMNS, *ATTEMPT_COLUMNS)
            .select_from(deliveries.outerjoin(attempts, attempts.c.delivery_id == deliveries.c.id))
            .order_by(deliveries.c.broadcast_id, deliveries.c.seq, attempts.c.number)
        )
        if broadcast_id is not None:
            query = query.where(deliveries.c.broadcast_id == broadcast_id)
        if since is not None:
            query = query.where(deliveries.c.updated_at >= since)
        options = {READ_ONLY: True, "stream_results": True, "yield_per": _ROWS_PER_FETCH}
        with self._engine.connect().execution_options(**options) as conn:
            yield from _group(conn.execute(query))


def _group(rows: Any) -> Iterator[AuditRecord]:
    current: AuditRecord | None = None
    width = len(_DELIVERY_KEYS)
    for row in rows:
        values = tuple(row)
        delivery = dict(zip(_DELIVERY_KEYS, values[:width], strict=True))
        if current is None or current.delivery["delivery"] != delivery["delivery"]:
            if current is not None:
                yield current
            current = AuditRecord(delivery)
        if values[width] is not None:  # the outer join's empty side: no attempt yet
            current.attempts.append(dict(zip(_ATTEMPT_KEYS, values[width:], strict=True)))
    if current is not None:
        yield current
