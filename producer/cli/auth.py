"""Sign-in commands: ``login``, ``accounts``, ``logout``, ``genkey``, ``rekey``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis
from cryptography.fernet import Fernet

from producer import accounts
from producer.signin import sign_in
from threadcast import ids
from threadcast.errors import TokenCacheError
from threadcast.ledger import Ledger
from threadcast.settings import Settings, load_settings
from threadcast.tokencache import TokenCacheStore


def register(commands: Any) -> None:
    login = commands.add_parser("login", help="sign a tenant in (device-code flow)")
    login.add_argument("--tenant", required=True, help="tenant id (GUID)")
    login.set_defaults(run=_login)
    listing = commands.add_parser("accounts", help="signed-in tenants and their state")
    listing.add_argument("--json", action="store_true", help="a JSON list")
    listing.set_defaults(run=_accounts)
    logout = commands.add_parser("logout", help="remove a tenant's token cache")
    logout.add_argument("--tenant", required=True, help="tenant id (GUID)")
    logout.set_defaults(run=_logout)
    key = commands.add_parser("genkey", help="print a new THREADCAST_TOKEN_CACHE_KEY")
    key.set_defaults(run=_genkey)
    rekey = commands.add_parser(
        "rekey", help="re-encrypt every token cache under the first THREADCAST_TOKEN_CACHE_KEY"
    )
    rekey.set_defaults(run=_rekey)


def _login(args: argparse.Namespace, _rest: list[str]) -> int:
    user, resumed = sign_in(load_settings(), args.tenant, lambda text: print(text, flush=True))
    print(f"signed in tenant {args.tenant} as {user}; resumed {resumed} waiting deliveries")
    return 0


def _accounts(args: argparse.Namespace, _rest: list[str]) -> int:
    settings = load_settings()
    found = accounts.list_accounts(settings)
    if args.json:
        print(accounts.dumps(found))
    else:
        print(accounts.render(found, accounts.endpoint_summary(settings)))
    return 0


def _logout(args: argparse.Namespace, _rest: list[str]) -> int:
    tenant = ids.guid("--tenant", args.tenant)
    accounts.log_out(load_settings(), tenant)
    print(f"removed the token cache of tenant {tenant}; its deliveries will wait for a sign-in")
    return 0


def _genkey(_args: argparse.Namespace, _rest: list[str]) -> int:
    print(Fernet.generate_key().decode())
    return 0


def _rekey(_args: argparse.Namespace, _rest: list[str]) -> int:
    settings = load_settings()
    ledger = Ledger.open(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
        tenants = store.tenants()
        failed = sum(not _rekey_one(store, tenant, _lock_wait(settings)) for tenant in tenants)
    finally:
        client.close()
        ledger.close()
    print(
        f"re-encrypted the token caches of {len(tenants) - failed} of {len(tenants)} tenants "
        "under the first key of THREADCAST_TOKEN_CACHE_KEY; once every process runs with "
        "that key first, the others can be dropped"
        + ("" if not failed else f" (not before the {failed} above are fixed)")
    )
    return 1 if failed else 0


def _lock_wait(settings: Settings) -> float:
    # Longer than a worker holds a tenant's refresh lock (threadcast/tokens.py: through discovery
    # and the token call, each up to the HTTP timeout).
    return max(30.0, 2 * settings.http_timeout + 10) + 30


def _rekey_one(store: TokenCacheStore, tenant: str, wait: float) -> bool:
    """Re-encrypt one tenant's copies; say on stderr what could not be, and return False."""
    try:
        unreadable = store.rekey(tenant, wait)
    except TokenCacheError as exc:
        print(f"threadcast: {exc}", file=sys.stderr)
        return False
    for copy in unreadable:
        print(
            f"threadcast: tenant {tenant}: its {copy} copy opens with no key of "
            f"THREADCAST_TOKEN_CACHE_KEY and was left as it is: threadcast login --tenant "
            f"{tenant}",
            file=sys.stderr,
        )
    return not unreadable
