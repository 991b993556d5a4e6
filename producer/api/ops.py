"""Operations routes: ``/healthz`` (open, for orchestrators) and ``/metrics`` (behind a key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from producer.api.auth import caller
from producer.api.models import Health
from producer.api.services import Services, services
from threadcast.metrics import render

router = APIRouter(tags=["operations"])
Store = Annotated[Services, Depends(services)]


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness and readiness (no key needed)",
    responses={503: {"model": Health, "description": "the ledger or Redis does not answer"}},
)
def healthz(response: Response, store: Store) -> Health:
    ledger_ok, redis_ok = store.health()
    ok = ledger_ok and redis_ok
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "unavailable", ledger=ledger_ok, redis=redis_ok)


@router.get(
    "/metrics",
    summary="Prometheus metrics (send an API key)",
    response_class=Response,
    dependencies=[Depends(caller)],
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(store: Store, accept: Annotated[str | None, Header()] = None) -> Response:
    body, content_type = render(store.metrics, accept)
    return Response(body, media_type=content_type)
