"""``/v1/broadcasts/{id}/...`` views the console shows (any client may use them): progress
with the time left, deliveries per tenant and failures per error code, one delivery's
attempt log, how many deliveries a retry or cancel would touch (nothing changed), and the
audit export as a download.

Included before :mod:`producer.api.broadcasts`, whose ``GET /{id}`` takes any text as the
id: these paths are matched first. Their id is one path segment, so a malformed id holding
``/`` still reaches that route and is refused by name, and a change's attempts
(``/{id}/changes/{c}/deliveries/{d}/attempts``) are never mistaken for a delivery's.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from typing import Annotated, Literal, TextIO, cast

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import StreamingResponse

from producer import breakdown, export, status
from producer.api.auth import caller
from producer.api.broadcasts import _owned
from producer.api.errors import COMMON_RESPONSES, NOT_FOUND
from producer.api.models import RetryIn
from producer.api.services import Services, services
from producer.breakdown import Breakdown, DeliveryLog, Progress, Touches
from threadcast.apikeys import ApiKey
from threadcast.dispatch.limits import Limits

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"], responses=COMMON_RESPONSES)
Caller = Annotated[ApiKey, Depends(caller)]
Store = Annotated[Services, Depends(services)]
BroadcastId = Annotated[str, Path(description="the broadcast id")]

_CHUNK = 64 * 1024
_IN_MEMORY = 8 * 1024 * 1024  # an export larger than this spills to a temporary file
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@router.get(
    "/{broadcast_id}/progress",
    response_model=Progress,
    responses=NOT_FOUND,
    summary="Counts per state and the time left the configured limits allow (poll it)",
)
def progress(broadcast_id: BroadcastId, key: Caller, store: Store) -> Progress:
    report = status.report(store.ledger, _owned(store, key, broadcast_id), store.settings.endpoint)
    return breakdown.progress(store.queries, Limits.from_settings(store.settings), report)


@router.get(
    "/{broadcast_id}/breakdown",
    response_model=Breakdown,
    responses=NOT_FOUND,
    summary="Deliveries per tenant and state; failed and unknown ones per error code",
)
def per_tenant_and_error(broadcast_id: BroadcastId, key: Caller, store: Store) -> Breakdown:
    return breakdown.breakdown(store.ledger, _owned(store, key, broadcast_id))


@router.get(
    "/{broadcast_id}/deliveries/{delivery_id}/attempts",
    response_model=DeliveryLog,
    responses={404: {"description": "no such broadcast, or no such delivery in it"}},
    summary="One delivery and every attempt made for it (the attempt log)",
)
def delivery_attempts(
    broadcast_id: BroadcastId,
    delivery_id: Annotated[str, Path(description="the delivery id")],
    key: Caller,
    store: Store,
) -> DeliveryLog:
    return breakdown.delivery_log(store.ledger, _owned(store, key, broadcast_id), delivery_id)


@router.post(
    "/{broadcast_id}/retry/preview",
    response_model=Touches,
    responses=NOT_FOUND,
    summary="How many deliveries this retry would re-queue now (nothing is changed)",
)
def retry_preview(
    broadcast_id: BroadcastId,
    key: Caller,
    store: Store,
    body: Annotated[RetryIn | None, Body()] = None,
) -> Touches:
    broadcast_id = _owned(store, key, broadcast_id)
    wanted = body or RetryIn()
    return breakdown.retry_count(
        store.ledger,
        broadcast_id,
        wanted.states,
        error_code=wanted.error_code,
        tenant=wanted.tenant,
    )


@router.post(
    "/{broadcast_id}/cancel/preview",
    response_model=Touches,
    responses=NOT_FOUND,
    summary="How many deliveries a cancel would stop now (nothing is changed)",
)
def cancel_preview(broadcast_id: BroadcastId, key: Caller, store: Store) -> Touches:
    return breakdown.cancel_count(store.ledger, _owned(store, key, broadcast_id))


@router.get(
    "/{broadcast_id}/export",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        200: {
            "content": {"text/csv": {}, "application/x-ndjson": {}},
            "description": "every delivery with all its attempts, as `threadcast export` writes",
        },
    },
    summary="Download the audit export: every delivery with all of its attempts",
)
def download(
    broadcast_id: BroadcastId,
    key: Caller,
    store: Store,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "jsonl",
) -> StreamingResponse:
    broadcast_id = _owned(store, key, broadcast_id)
    chunks = _exported(store, broadcast_id, format)
    # The export is written whole by the first step: a ledger error is a 503 here, not a
    # download cut short.
    first = next(chunks)
    name = f"{broadcast_id}.{format}"
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _exported(store: Services, broadcast_id: str, fmt: str) -> Iterator[bytes]:
    """The export in chunks; written first in memory, or on disk past ``_IN_MEMORY``."""
    with tempfile.SpooledTemporaryFile(
        max_size=_IN_MEMORY, mode="w+", encoding="utf-8", newline=""
    ) as out:
        changes = export.ChangeStates(store.ledger.changes, broadcast_id)
        export.write(store.ledger.audit.records(broadcast_id), fmt, cast(TextIO, out), changes)
        out.seek(0)
        yield b""
        while chunk := out.read(_CHUNK):
            yield chunk.encode("utf-8")
