"""``GET /v1/health``: the checklist ``threadcast doctor`` runs (producer/doctor.py), with
the API's own settings: Redis, the ledger, sign-ins, Graph and identity, the dispatcher and
the scheduler. Read-only, no secret in any line. Operator keys only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from producer import doctor
from producer.api.auth import caller
from producer.api.errors import COMMON_RESPONSES
from producer.api.operator import FORBIDDEN, require_operator
from producer.api.services import Services, services
from threadcast.apikeys import ApiKey

router = APIRouter(prefix="/v1/health", tags=["operations"], responses=COMMON_RESPONSES)
Caller = Annotated[ApiKey, Depends(caller)]
Store = Annotated[Services, Depends(services)]


class CheckOut(BaseModel):
    name: str
    status: str = Field(description="ok, warn (works, but look) or fail (fix it before sending)")
    detail: str
    fix: str | None = Field(description="what to do about a warn or fail")


class HealthReport(BaseModel):
    ok: bool = Field(description="no check failed")
    counts: dict[str, int] = Field(description="checks per status")
    checks: list[CheckOut]


@router.get(
    "",
    response_model=HealthReport,
    responses=FORBIDDEN,
    summary="What `threadcast doctor` checks, as the API's process sees it (operator keys)",
)
def health(key: Caller, store: Store) -> HealthReport:
    require_operator(key, "read the deployment's health")
    results = doctor.diagnose(settings=store.settings)
    return HealthReport(
        ok=not doctor.failed(results),
        counts={s.value: sum(r.status is s for r in results) for s in doctor.Status},
        checks=[
            CheckOut(name=r.name, status=r.status.value, detail=r.detail, fix=r.fix)
            for r in results
        ],
    )
