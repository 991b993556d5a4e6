"""``GET /v1/tenants``: every signed-in tenant with its sign-in state, the Graph permissions
it was granted, its token's expiry and the deliveries waiting for it -- what ``threadcast
accounts`` prints (producer/accounts.py). Operator keys only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from producer import accounts
from producer.api.auth import caller
from producer.api.errors import COMMON_RESPONSES
from producer.api.operator import FORBIDDEN, require_operator
from producer.api.services import Services, services
from threadcast.apikeys import ApiKey

router = APIRouter(prefix="/v1/tenants", tags=["operations"], responses=COMMON_RESPONSES)
Caller = Annotated[ApiKey, Depends(caller)]
Store = Annotated[Services, Depends(services)]


class TenantOut(BaseModel):
    tenant: str
    user: str | None = Field(description="who signed in")
    access_token_expires: str | None = Field(description="ISO 8601; null: no access token")
    last_refresh: str | None
    state: str = Field(description="ok, needs sign-in, or unreadable")
    reason: str | None = Field(description="why it needs a sign-in (or cannot be read)")
    waiting: int = Field(description="deliveries waiting for its sign-in (waiting_auth)")
    scopes: list[str] = Field(description="the Graph permissions its sign-in was granted")


class TenantList(BaseModel):
    endpoint: str = Field(description="where posts go now, as `threadcast accounts` says it")
    tenants: list[TenantOut]


@router.get(
    "",
    response_model=TenantList,
    responses=FORBIDDEN,
    summary="Signed-in tenants: sign-in state, scopes, token expiry (operator keys)",
)
def tenants(key: Caller, store: Store) -> TenantList:
    require_operator(key, "read the tenants' sign-ins")
    found = accounts.list_accounts(store.settings)
    return TenantList(
        endpoint=accounts.endpoint_summary(store.settings),
        tenants=[
            TenantOut(
                tenant=a.tenant,
                user=a.user,
                access_token_expires=a.access_token_expires,
                last_refresh=a.last_refresh,
                state=a.state,
                reason=a.reason,
                waiting=a.waiting,
                scopes=a.scopes,
            )
            for a in found
        ],
    )
