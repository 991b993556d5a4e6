"""HTTP routes of the identity platform, at the paths MSAL derives from
``authority=https://HOST:PORT/{tenant}`` with ``instance_discovery=False``."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from simulator.authority import Authority
from simulator.clock import Clock
from simulator.discovery import openid_configuration
from simulator.errors import IdentityError
from simulator.keys import SigningKey
from simulator.tenants import parse_tenant

_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
_Handler = Callable[[Request], Awaitable[dict[str, object]]]


def base_url(request: Request) -> str:
    """Where the caller reached us; every URL we hand out points back there."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body (first value of each name) plus HTTP Basic client credentials."""
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        for name, value in parse_qsl((await request.body()).decode("utf-8", "replace"), True):
            form.setdefault(name, value)
    client_id, secret = _basic_auth(request.headers.get("authorization"))
    if client_id and not form.get("client_id"):
        form["client_id"] = client_id
    if secret and not form.get("client_secret"):
        form["client_secret"] = secret
    return form


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    # A confidential client sends client_id:client_secret this way; any secret is accepted.
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret) or None


class IdentityRoutes:
    def __init__(self, authority: Authority, key: SigningKey, clock: Clock, approve_delay: float):
        self._authority = authority
        self._key = key
        self._clock = clock
        self._approve_delay = approve_delay

    def routes(self) -> list[Route]:
        endpoint = self._endpoint
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", endpoint(self._discovery)),
            Route("/{tenant}/discovery/v2.0/keys", endpoint(self._keys)),
            Route("/{tenant}/oauth2/v2.0/devicecode", endpoint(self._devicecode), methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/token", endpoint(self._token), methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/authorize", endpoint(self._authorize)),
            Route("/devicelogin", self._devicelogin),
        ]

    def _endpoint(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                payload = await handler(request)
            except IdentityError as exc:
                return self._error(request, exc)
            return JSONResponse(payload, headers=_NO_STORE)

        return endpoint

    def _error(self, request: Request, exc: IdentityError) -> Response:
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        body = exc.body(str(uuid.uuid4()), correlation_id, self._clock())
        return JSONResponse(body, status_code=exc.status, headers=_NO_STORE)

    async def _discovery(self, request: Request) -> dict[str, object]:
        tenant = parse_tenant(request.path_params["tenant"])
        return openid_configuration(base_url(request), tenant.segment)

    async def _keys(self, request: Request) -> dict[str, object]:
        tenant = parse_tenant(request.path_params["tenant"])
        return self._key.jwks(f"{base_url(request)}/{tenant.tenant_id}/v2.0")

    async def _devicecode(self, request: Request) -> dict[str, object]:
        tenant = parse_tenant(request.path_params["tenant"])
        return self._authority.authorize_device(tenant, await read_form(request), base_url(request))

    async def _token(self, request: Request) -> dict[str, object]:
        tenant = parse_tenant(request.path_params["tenant"])
        return self._authority.exchange(tenant, await read_form(request), base_url(request))

    async def _authorize(self, request: Request) -> dict[str, object]:
        parse_tenant(request.path_params["tenant"])
        raise IdentityError(
            "invalid_request",
            900561,
            "The simulator signs users in with the device code flow only "
            "(POST .../oauth2/v2.0/devicecode); there is no browser sign-in page.",
        )

    async def _devicelogin(self, request: Request) -> Response:
        return PlainTextResponse(
            "threadcast simulator: there is nothing to type here. Every device code is approved "
            f"automatically {self._approve_delay:g} s after it was issued "
            "(python -m simulator --device-approve-delay SECONDS).\n"
        )
