"""``/v1/broadcasts``: send, read, list deliveries, cancel, retry; edit and recall what was
sent, and read those changes.

Ids in paths match any text (``/``, CR and LF included) so that a malformed id still
reaches its route and is refused by name (422) instead of falling through as an unknown URL
or, worse, being cut at a newline. Routes run in the threadpool: the Producer and the ledger
block.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from starlette.convertors import Convertor, register_url_convertor

from producer import change_reports, status
from producer.api.auth import caller
from producer.api.errors import COMMON_RESPONSES, NOT_FOUND, TooLarge
from producer.api.limits import image_bytes, too_large_message, too_many_targets_message
from producer.api.models import (
    AudienceCount,
    BroadcastAccepted,
    BroadcastIn,
    Cancelled,
    ChangeMade,
    DeliveryList,
    DryRun,
    EditIn,
    ErrorBody,
    EstimateOut,
    Requeued,
    ResolvedTarget,
    RetryIn,
)
from producer.api.services import Services, services
from producer.audiences import Resolution
from producer.listing import DEFAULT_LIMIT, MAX_LIMIT, list_broadcasts
from producer.listing import query_from as listing_query
from producer.reports import BroadcastPage, BroadcastReport, ChangeList, DeliveryAttempts
from threadcast import ids
from threadcast.apikeys import ApiKey
from threadcast.contract import Target
from threadcast.errors import AudienceError, NotFoundError, ValidationError
from threadcast.ledger import DeliveryState
from threadcast.ledger.changes import Made
from threadcast.metrics import record_api_broadcast

log = logging.getLogger("threadcast.api")


class AnyText(Convertor[str]):
    regex = r"[\s\S]*"  # Starlette's "path" stops at a newline

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyText())

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"], responses=COMMON_RESPONSES)
Caller = Annotated[ApiKey, Depends(caller)]
Store = Annotated[Services, Depends(services)]
BroadcastId = Annotated[str, Path(description="the broadcast id")]


#: ``seq`` is a 32-bit column: no cursor past this names a delivery (and SQLite cannot even
#: bind one past 64 bits).
MAX_AFTER = 2**31 - 1


#: The scheduler's ids, ``sched-<schedule>-<UTC instant>`` (producer/scheduler/plan.py): a
#: caller who took one first would make that occurrence fail, or own it.
RESERVED_PREFIX = "sched-"
USED = "is already used by a different broadcast"  # as the ledger refuses a reused id


def _checked(broadcast_id: str) -> str:
    return ids.broadcast_id("broadcast_id", broadcast_id)


def _owned(store: Services, key: ApiKey, broadcast_id: str) -> str:
    """The checked id of a broadcast ``key`` may see and act on. Another key's is answered
    exactly as an unknown id is (404, the same message), so ids cannot be probed."""
    broadcast_id = _checked(broadcast_id)
    if not key.owns(store.ledger.broadcasts.source(broadcast_id)):
        raise NotFoundError(f"no broadcast with id {broadcast_id!r}")
    return broadcast_id


def _not_foreign(store: Services, key: ApiKey, broadcast_id: str) -> None:
    """Refuse an id another key's broadcast holds, as a different broadcast under a used id
    is refused: whatever its content, nothing of it is sent again or shown."""
    try:
        source = store.ledger.broadcasts.source(broadcast_id)
    except NotFoundError:
        return
    if not key.owns(source):
        raise ValidationError("broadcast_id", broadcast_id, USED)


def _new_id(store: Services, key: ApiKey, broadcast_id: str | None) -> None:
    if broadcast_id is None:
        return
    _checked(broadcast_id)
    if broadcast_id.startswith(RESERVED_PREFIX):
        reason = f"ids starting with {RESERVED_PREFIX!r} are the scheduler's"
        raise ValidationError("broadcast_id", broadcast_id, reason)
    _not_foreign(store, key, broadcast_id)


async def _target_cap(request: Request, store: Store) -> None:
    """THREADCAST_API_MAX_TARGETS, counted before any target is validated (dependencies run
    before the body's validation): thousands of bad targets get one 413, not a 422 listing
    thousands of errors. And THREADCAST_API_MAX_BODY_BYTES for what is not image data (the
    body limit let the images' data through beside it)."""
    size = len(await request.body())
    try:
        body = await request.json()  # parsed once already: Starlette keeps it
    except (ValueError, RecursionError):
        body = None  # not JSON: the body's validation says so
    most = store.settings.api_max_body_bytes
    if size - image_bytes(body) > most:
        raise TooLarge(too_large_message(most, images=True))
    targets = body.get("targets") if isinstance(body, dict) else None
    limit = store.settings.api_max_targets
    if isinstance(targets, list) and len(targets) > limit:
        raise TooLarge(too_many_targets_message(len(targets), limit))


@router.post(
    "",
    status_code=201,
    response_model=BroadcastAccepted,
    summary="Send a broadcast (idempotent with your own broadcast_id)",
    responses={
        200: {"model": BroadcastAccepted, "description": "already recorded: nothing new"},
        413: {"model": ErrorBody, "description": "body or target count over the limit"},
    },
    dependencies=[Depends(_target_cap)],
)
def create(body: BroadcastIn, response: Response, key: Caller, store: Store) -> BroadcastAccepted:
    _new_id(store, key, body.broadcast_id)
    resolution = _resolve(store, body)
    targets: list[Target | dict[str, object]] = [t.model_dump() for t in body.targets]
    targets += resolution.targets
    result = store.producer.send(
        body.content,
        targets,
        content_type=body.content_type,
        broadcast_id=body.broadcast_id,
        send_at=body.send_at,
        source=key.name,
        **body.part_fields(),
    )
    if not result.created:
        # Another key may have recorded the same broadcast since _new_id looked.
        _not_foreign(store, key, result.broadcast_id)
        response.status_code = 200
    # Only a validated id gets here, so it is safe in a header.
    response.headers["Location"] = f"{router.prefix}/{result.broadcast_id}"
    record_api_broadcast(key.name, result.created)
    log.info(
        "broadcast accepted",
        extra={
            "broadcast": result.broadcast_id,
            "source": key.name,
            "deliveries": result.deliveries,
            "new": result.created,
        },
    )
    return BroadcastAccepted(**asdict(result))


def _resolve(store: Services, body: BroadcastIn) -> Resolution:
    """The audiences' channels (none without audiences), within THREADCAST_API_MAX_TARGETS
    together with the explicit targets."""
    if not body.audiences:
        return Resolution()
    resolution = store.producer.resolve(body.audiences)
    if not resolution.targets:
        raise AudienceError("audiences", body.audiences, "resolved to no channel")
    limit = store.settings.api_max_targets
    count = len(body.targets) + len(resolution.targets)
    if count > limit:
        raise TooLarge(too_many_targets_message(count, limit) + " (audiences resolved)")
    return resolution


@router.post(
    "/dry-run",
    response_model=DryRun,
    summary="What a broadcast would go to (audiences resolved) and how long it would take",
    responses={413: {"model": ErrorBody, "description": "body or target count over the limit"}},
    dependencies=[Depends(_target_cap)],
)
def dry_run(body: BroadcastIn, key: Caller, store: Store) -> DryRun:
    resolution = _resolve(store, body)
    explicit = [Target.parse(f"targets[{i}]", t.model_dump()) for i, t in enumerate(body.targets)]
    if explicit:
        resolution.add("targets", explicit)
    found = store.producer.estimate(resolution.targets)
    names = resolution.names
    return DryRun(
        audiences=[
            AudienceCount(audience=r.spec, channels=len(r.targets)) for r in resolution.parts
        ],
        targets=[
            ResolvedTarget(
                tenant=t.tenant,
                group=t.group,
                channel=t.channel,
                team_name=names.get((t.tenant, t.group, t.channel), (None, None))[0],
                channel_name=names.get((t.tenant, t.group, t.channel), (None, None))[1],
            )
            for t in resolution.targets
        ],
        per_tenant=resolution.per_tenant(),
        estimate=EstimateOut(
            seconds=None if found.seconds == float("inf") else found.seconds,
            bound=found.bound,
            backlog=found.backlog,
            backlog_ahead=found.backlog_ahead,
            quota_days=found.quota_days,
            limits=found.limits,
            text=found.describe(),
        ),
    )


@router.get(
    "",
    response_model=BroadcastPage,
    summary="Recent broadcasts, newest first: progress and counts per state, a page at a time",
)
def listing(
    key: Caller,
    store: Store,
    state: Annotated[
        list[str], Query(description="only broadcasts with deliveries in these states")
    ] = [],  # noqa: B006
    source: Annotated[str | None, Query(max_length=200, description="only this source")] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="created at or after: ISO 8601, or 2h, 3d")
    ] = None,
    until: Annotated[str | None, Query(max_length=64, description="created before")] = None,
    after: Annotated[
        str | None, Query(max_length=200, description="`next_after` of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> BroadcastPage:
    # As `threadcast list` (producer/listing.py); a key sees its own broadcasts only.
    if not key.operator:
        if source is not None and source != key.name:
            raise ValidationError("source", source, "a key sees only its own broadcasts")
        source = key.name
        if after is not None:
            _owned(store, key, after)
    query = listing_query(
        states=state, source=source, since=since, until=until, limit=limit, after=after, prefix=""
    )
    return list_broadcasts(store.ledger, query, prefix="")


@router.get(
    "/{broadcast_id:anytext}/deliveries",
    response_model=DeliveryList,
    responses=NOT_FOUND,
    summary="List a broadcast's deliveries, a page at a time",
)
def deliveries(
    broadcast_id: BroadcastId,
    key: Caller,
    store: Store,
    state: Annotated[list[DeliveryState], Query(description="only these states")] = [],  # noqa: B006
    tenant: Annotated[str | None, Query(max_length=64, description="only this tenant")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_AFTER, description="`next_after` of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    broadcast_id = _checked(broadcast_id)
    wanted_tenant = None if tenant is None else ids.guid("tenant", tenant)
    _owned(store, key, broadcast_id)  # 404 for an unknown (or another key's) id
    page = store.queries.page(
        broadcast_id, states=state, tenant=wanted_tenant, after=after, limit=limit
    )
    return DeliveryList(deliveries=page.rows, next_after=page.next_after)


@router.get(
    "/{broadcast_id:anytext}/changes",
    response_model=ChangeList,
    responses=NOT_FOUND,
    summary="A broadcast's edits and recall: deliveries per item state, error groups",
)
def changes(broadcast_id: BroadcastId, key: Caller, store: Store) -> ChangeList:
    broadcast_id = _owned(store, key, broadcast_id)
    return ChangeList(
        broadcast_id=broadcast_id, changes=change_reports.change_reports(store.ledger, broadcast_id)
    )


@router.get(
    "/{broadcast_id:anytext}/changes/{change_id:anytext}/deliveries/{delivery_id:anytext}/attempts",
    response_model=DeliveryAttempts,
    responses={
        404: {"model": ErrorBody, "description": "no such broadcast, change or delivery in it"}
    },
    summary="A delivery's state in one edit or recall, and every request made for it",
)
def change_attempts(
    broadcast_id: BroadcastId,
    change_id: Annotated[str, Path(description="the change id")],
    delivery_id: Annotated[str, Path(description="the delivery id")],
    key: Caller,
    store: Store,
) -> DeliveryAttempts:
    broadcast_id = _checked(broadcast_id)
    change_id = ids.guid("change_id", change_id)
    delivery_id = ids.guid("delivery_id", delivery_id)
    _owned(store, key, broadcast_id)
    [found] = change_reports.delivery_attempts(store.ledger, broadcast_id, delivery_id, change_id)
    return found


@router.get(
    "/{broadcast_id:anytext}",
    response_model=BroadcastReport,
    responses=NOT_FOUND,
    summary="A broadcast: its deliveries per state, what waits and why, its endpoint, errors",
)
def read(broadcast_id: BroadcastId, key: Caller, store: Store) -> BroadcastReport:
    # The one report `threadcast status` shows too (producer/reports.py).
    return status.report(store.ledger, _owned(store, key, broadcast_id), store.settings.endpoint)


@router.post(
    "/{broadcast_id:anytext}/cancel",
    response_model=Cancelled,
    responses=NOT_FOUND,
    summary="Cancel every delivery not yet sent",
)
def cancel(broadcast_id: BroadcastId, key: Caller, store: Store) -> Cancelled:
    broadcast_id = _owned(store, key, broadcast_id)
    count = store.producer.cancel(broadcast_id)
    log.info(
        "broadcast cancelled",
        extra={"broadcast": broadcast_id, "source": key.name, "cancelled": count},
    )
    return Cancelled(broadcast_id=broadcast_id, cancelled=count)


@router.post(
    "/{broadcast_id:anytext}/retry",
    response_model=Requeued,
    responses=NOT_FOUND,
    summary="Re-queue failed, unknown, cancelled or waiting_auth deliveries",
)
def retry(
    broadcast_id: BroadcastId,
    key: Caller,
    store: Store,
    body: Annotated[RetryIn | None, Body()] = None,
) -> Requeued:
    broadcast_id = _owned(store, key, broadcast_id)
    wanted = body or RetryIn()
    count = store.producer.retry(
        broadcast_id, wanted.states, error_code=wanted.error_code, tenant=wanted.tenant
    )
    log.info(
        "broadcast re-queued",
        extra={"broadcast": broadcast_id, "source": key.name, "requeued": count},
    )
    return Requeued(broadcast_id=broadcast_id, requeued=count)


_MADE_BEFORE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ChangeMade,
        "description": "asked for before: the same change, its failed and unknown deliveries "
        "sent again (`again`)",
    }
}


@router.post(
    "/{broadcast_id:anytext}/edit",
    status_code=201,
    response_model=ChangeMade,
    responses={
        **_MADE_BEFORE,
        **NOT_FOUND,
        413: {"model": ErrorBody, "description": "body over the limit"},
    },
    summary="Edit every message the broadcast sent into this one (THREADCAST_CHANGES=true)",
    dependencies=[Depends(_target_cap)],
)
def edit(
    broadcast_id: BroadcastId, body: EditIn, response: Response, key: Caller, store: Store
) -> ChangeMade:
    broadcast_id = _owned(store, key, broadcast_id)
    made = store.producer.edit(
        broadcast_id,
        body.content,
        content_type=body.content_type,
        source=key.name,
        **body.part_fields(),
    )
    return _made(made, response, key)


@router.post(
    "/{broadcast_id:anytext}/recall",
    status_code=201,
    response_model=ChangeMade,
    responses={**_MADE_BEFORE, **NOT_FOUND},
    summary="Recall the broadcast: cancel what was not sent, delete every message it sent "
    "(THREADCAST_CHANGES=true)",
)
def recall(broadcast_id: BroadcastId, response: Response, key: Caller, store: Store) -> ChangeMade:
    broadcast_id = _owned(store, key, broadcast_id)
    return _made(store.producer.recall(broadcast_id, source=key.name), response, key)


def _made(made: Made, response: Response, key: ApiKey) -> ChangeMade:
    """201 for a new change, 200 for one asked for before."""
    if not made.created:
        response.status_code = 200
    change = made.change
    log.info(
        "broadcast change recorded",
        extra={
            "broadcast": change.broadcast_id,
            "kind": change.kind.value,
            "source": key.name,
            "change": change.id,
            "new": made.created,
            "again": made.again,
        },
    )
    return ChangeMade(**made.to_json())
