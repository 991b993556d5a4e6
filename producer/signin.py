"""``threadcast login``: the device-code sign-in that fills a tenant's shared token cache."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msal
import redis

from threadcast import endpoints, identity, ids
from threadcast.errors import IdentityError
from threadcast.ledger import Ledger
from threadcast.lifecycle import Intake, Publisher
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore


def sign_in(settings: Settings, tenant: str, say: Callable[[str], None]) -> tuple[str, int]:
    """Run the device-code flow for ``tenant``, store the cache, resume waiting deliveries.

    Returns the signed-in user's name and how many waiting deliveries were resumed.
    """
    settings.require("client_id", "token_cache_key")
    tenant = ids.guid("--tenant", tenant)
    cache = msal.SerializableTokenCache()
    ledger = Ledger.open(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    publisher = Publisher(settings.redis_url)
    try:
        switch = endpoints.EndpointRecord(client, ledger.deployment).read()
        scopes = endpoints.login_scopes(
            settings.endpoint, switch, audiences=settings.audiences, changes=settings.changes
        )
        with identity.http_client(settings) as http:
            result = _device_flow(settings, tenant, cache, http, say, scopes)
        store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
        store.save(tenant, cache.serialize())
        resumed = Intake(ledger, publisher).resume(tenant, datetime.now(UTC))
    finally:
        publisher.close()
        client.close()
        ledger.close()
    claims = result.get("id_token_claims") or {}
    return str(claims.get("preferred_username") or claims.get("name") or "?"), resumed


def _device_flow(
    settings: Settings,
    tenant: str,
    cache: msal.SerializableTokenCache,
    http: httpx.Client,
    say: Callable[[str], None],
    scopes: list[str],
) -> dict[str, Any]:
    where = identity.authority(settings, tenant)
    try:
        app = identity.msal_app(settings, tenant, cache, http)
        flow = _initiate(app, scopes)
        if "user_code" not in flow:
            raise _refused(tenant, flow)
        say(str(flow["message"]))
        result = _complete(app, flow)
    except httpx.HTTPError as exc:
        raise IdentityError(f"cannot reach the identity platform at {where}: {exc}") from exc
    except ValueError as exc:  # MSAL's discovery failures
        raise IdentityError(f"the identity platform at {where} refused discovery: {exc}") from exc
    if "access_token" not in result:
        raise _refused(tenant, result)
    return result


# MSAL offers the device-code flow on public clients only. A confidential registration (one
# with THREADCAST_CLIENT_SECRET, "public client flows" off in Entra) runs the same grant with
# its secret through the app's OAuth2 client, which fills the same token cache.
_OIDC_SCOPES = ["offline_access", "openid", "profile"]


def _initiate(app: msal.ClientApplication, scopes: list[str]) -> dict[str, Any]:
    if isinstance(app, msal.PublicClientApplication):
        return dict(app.initiate_device_flow(scopes=scopes))
    return dict(app.client.initiate_device_flow(scope=[*scopes, *_OIDC_SCOPES]))


def _complete(app: msal.ClientApplication, flow: dict[str, Any]) -> dict[str, Any]:
    if isinstance(app, msal.PublicClientApplication):
        return dict(app.acquire_token_by_device_flow(flow))
    return dict(app.client.obtain_token_by_device_flow(flow, data={"code": flow["device_code"]}))


def _refused(tenant: str, answer: dict[str, Any]) -> IdentityError:
    description = str(answer.get("error_description", "")).splitlines()[0:1]
    return IdentityError(
        f"sign-in for tenant {tenant} failed: {answer.get('error', 'unknown error')} "
        f"{description[0] if description else ''}".rstrip()
    )
