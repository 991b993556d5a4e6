"""Sign-in commands: ``login``, ``accounts``, ``logout``, ``genkey``."""

from __future__ import annotations

import argparse
from typing import Any

from cryptography.fernet import Fernet

from producer import accounts
from producer.signin import sign_in
from threadcast import ids
from threadcast.settings import load_settings


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
