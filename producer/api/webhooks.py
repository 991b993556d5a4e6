"""``/v1/webhooks``: the webhook endpoints with their state and counts, the recent events with
each endpoint's delivery and attempts, and resuming a paused endpoint. Operator keys only:
webhooks report on every broadcast, whoever sent it. Secrets are never shown.

Routes run in the threadpool: the ledger blocks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from producer import webhooks
from producer.api.auth import caller
from producer.api.errors import COMMON_RESPONSES
from producer.api.models import ErrorBody
from producer.api.operator import FORBIDDEN, require_operator
from producer.api.services import Services, services
from threadcast.apikeys import ApiKey

MAX_EVENTS = 1000


def operator(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
    """The caller, if an operator (webhooks report on every broadcast); 403 otherwise."""
    require_operator(key, "read or resume webhooks")
    return key


router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses=COMMON_RESPONSES | FORBIDDEN,
    dependencies=[Depends(operator)],
)
Store = Annotated[Services, Depends(services)]


class EndpointOut(BaseModel):
    name: str
    url: str | None
    events: list[str]
    state: str  # active | paused | not_configured
    paused_at: str | None
    pause_reason: str | None
    consecutive_failures: int
    failing_since: str | None
    pending: int
    delivered: int
    failed: int
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None


class EndpointList(BaseModel):
    endpoints: list[EndpointOut]


class AttemptOut(BaseModel):
    number: int
    at: str
    outcome: str  # delivered | failed | given_up
    http_status: int | None
    error: str | None
    latency_ms: float | None


class DeliveryOut(BaseModel):
    endpoint: str
    state: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    delivered_at: str | None
    history: list[AttemptOut]  # the latest attempts first


class EventOut(BaseModel):
    id: str  # the webhook-id header
    type: str
    subject: str
    created_at: str
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class EventList(BaseModel):
    events: list[EventOut]


class ResumedOut(BaseModel):
    name: str
    was_paused: bool
    pending: int


@router.get("", response_model=EndpointList, summary="Webhook endpoints: state and counts")
def endpoints(store: Store) -> dict[str, Any]:
    views = webhooks.overview(store.ledger, store.settings.webhook_endpoints)
    return {"endpoints": [v.to_json() for v in views]}


@router.get(
    "/events",
    response_model=EventList,
    summary="Recent events, with each endpoint's delivery and attempts",
)
def events(store: Store, limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 50) -> dict[str, Any]:
    return {"events": [e.to_json() for e in webhooks.recent_events(store.ledger, limit)]}


@router.post(
    "/{name}/resume",
    response_model=ResumedOut,
    responses={404: {"model": ErrorBody, "description": "no endpoint with this name"}},
    summary="Resume a paused endpoint: its pending events go again now",
)
def resume(
    store: Store, name: Annotated[str, Path(max_length=64, description="the endpoint's name")]
) -> dict[str, Any]:
    done = webhooks.resume(store.ledger, store.settings.webhook_endpoints, name, datetime.now(UTC))
    return done.to_json()
