"""``threadcast accounts`` and ``logout``: the signed-in tenants as an operator sees them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from threadcast import endpoints
from threadcast.errors import TokenCacheError
from threadcast.ledger import Ledger
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore


@dataclass(frozen=True)
class Account:
    tenant: str
    user: str | None
    access_token_expires: str | None
    last_refresh: str | None
    state: str  # ok | needs sign-in | unreadable
    reason: str | None
    waiting: int
    scopes: list[str]  # the Graph permissions its sign-in was granted
    endpoint: str  # the Graph endpoint the deployment posts to now


def list_accounts(settings: Settings) -> list[Account]:
    ledger = Ledger.open(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
        waiting = ledger.deliveries.waiting_by_tenant()
        endpoint = endpoints.active(settings.endpoint, endpoints.recorded(ledger.deployment))
        return [
            _account(store, tenant, waiting.get(tenant, 0), endpoint) for tenant in store.tenants()
        ]
    finally:
        client.close()
        ledger.close()


def endpoint_summary(settings: Settings) -> str:
    """Where posts go now, as ``accounts`` and ``status`` say it."""
    ledger = Ledger.open(settings.database_url)
    try:
        return endpoints.describe(settings.endpoint, endpoints.recorded(ledger.deployment))
    finally:
        ledger.close()


def log_out(settings: Settings, tenant: str) -> None:
    with _store(settings) as store:
        store.delete(tenant)


def check_key(settings: Settings) -> None:
    """Raise ConfigError when THREADCAST_TOKEN_CACHE_KEY opens none of the stored caches."""
    with _store(settings) as store:
        store.verify_key()


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[TokenCacheStore]:
    ledger = Ledger.open(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield TokenCacheStore.for_settings(settings, client, ledger.token_caches)
    finally:
        client.close()
        ledger.close()


def _account(store: TokenCacheStore, tenant: str, waiting: int, endpoint: str) -> Account:
    try:
        text = store.load(tenant)
    except TokenCacheError as exc:
        return Account(tenant, None, None, None, "unreadable", str(exc), waiting, [], endpoint)
    cache: dict[str, Any] = json.loads(text or "{}")
    users = [a.get("username") for a in cache.get("Account", {}).values()]
    tokens = [t for t in cache.get("AccessToken", {}).values() if t.get("realm") == tenant]
    newest = max(tokens, key=lambda t: int(t["expires_on"]), default=None)
    dead = store.needs_sign_in(tenant, text or "")
    scopes = endpoints.granted_scopes(cache, tenant)
    if not dead and tokens and endpoints.ACCEPTED_SCOPES[endpoint].isdisjoint(scopes):
        dead = f"its sign-in lacks the permission {endpoint} needs: threadcast login again"
    return Account(
        tenant=tenant,
        user=users[0] if users else None,
        access_token_expires=_when(newest["expires_on"]) if newest else None,
        last_refresh=_when(newest["cached_at"]) if newest else None,
        state="needs sign-in" if dead else "ok",
        reason=dead,
        waiting=waiting,
        scopes=scopes,
        endpoint=endpoint,
    )


def _when(epoch: str | int) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def render(accounts: list[Account], endpoint: str = "") -> str:
    """The accounts as a table, under ``endpoint`` (a line saying where posts go)."""
    head = [f"endpoint: {endpoint}"] if endpoint else []
    if not accounts:
        return "\n".join([*head, "no tenant has signed in (threadcast login --tenant TENANT_ID)"])
    lines = [
        *head,
        f"{'tenant':<37}{'user':<40}{'state':<15}{'token expires':<27}{'waiting':<9}scopes",
    ]
    for a in accounts:
        lines.append(
            f"{a.tenant:<37}{a.user or '?':<40}{a.state:<15}{a.access_token_expires or '-':<27}"
            f"{a.waiting:<9}{' '.join(a.scopes) or '-'}"
        )
        if a.reason:
            lines.append(f"  {a.reason}")
    return "\n".join(lines)


def dumps(accounts: list[Account]) -> str:
    return json.dumps([asdict(a) for a in accounts], indent=2)
