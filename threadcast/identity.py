"""HTTPS clients and MSAL applications, built the same way for the worker and for sign-in.

MSAL is handed an explicit httpx client: ``requests`` (MSAL's default) lets the
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` environment override ``verify``, which would
silently ignore ``THREADCAST_CA_BUNDLE``.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import msal

from threadcast.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS trust for Graph and the identity platform: the CA bundle if set, else the system."""
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return ssl.create_default_context()


def http_client(settings: Settings, **options: Any) -> httpx.Client:
    """An httpx client that trusts what ``settings`` says, and no environment override."""
    options.setdefault("timeout", settings.http_timeout)
    return httpx.Client(verify=ssl_context(settings), trust_env=False, **options)


def authority(settings: Settings, tenant: str) -> str:
    return f"{settings.authority_host}/{tenant}"


def msal_app(
    settings: Settings, tenant: str, cache: msal.SerializableTokenCache, client: httpx.Client
) -> msal.ClientApplication:
    """A public client, or a confidential one when ``THREADCAST_CLIENT_SECRET`` is set."""
    settings.require("client_id")
    common: dict[str, Any] = {
        "authority": authority(settings, tenant),
        "token_cache": cache,
        "http_client": client,
        # Tenant discovery (the OpenID configuration) still runs; only the instance lookup
        # at login.microsoftonline.com is skipped, which a national or local cloud lacks.
        "instance_discovery": False,
    }
    if settings.client_secret is not None:
        return msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=settings.client_secret.get_secret_value(),
            **common,
        )
    return msal.PublicClientApplication(settings.client_id, **common)
