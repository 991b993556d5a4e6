"""The admin API's directory routes: a tenant's consent, team membership, missing channels.

    GET|POST /_sim/tenants/{tenant}/consent                          {"revoke": [..]}
    GET|POST /_sim/tenants/{tenant}/teams/{team}/membership          {"member": false}
    GET|POST /_sim/tenants/{tenant}/teams/{team}/channels/{channel}  {"exists": false}

A POST is checked whole before anything changes; bad input is ``400 {"error"}`` naming the
field. Each answers with the state now in force.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Collection

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.directory import Directory
from simulator.tenants import is_guid

_PERMISSION = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$")
_CONSENT_FIELDS = ("revoke", "grant")
_Handler = Callable[[Request], Awaitable[dict[str, object]]]
_Endpoint = Callable[[Request], Awaitable[Response]]


class AdminInputError(ValueError):
    """Bad input to an admin route; the message names the field."""


def _guid(request: Request, name: str, what: str) -> str:
    value = str(request.path_params[name])
    if not is_guid(value):
        raise AdminInputError(f"'{value}' is not a {what} GUID")
    return value.lower()


async def _json_object(request: Request, fields: Collection[str]) -> dict[str, object]:
    """The body: a JSON object of some of ``fields`` (at least one), nothing else."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    known = ", ".join(f"'{name}'" for name in fields)
    if not isinstance(body, dict) or not body:
        raise AdminInputError(f"the body must be a JSON object with {known}")
    for name in body:
        if name not in fields:
            raise AdminInputError(f"unknown field '{name}'; known: {known}")
    return body


def _flag(body: dict[str, object], name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise AdminInputError(f"'{name}' must be true or false, got {json.dumps(value)}")
    return value


def _permissions(body: dict[str, object], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(
        isinstance(item, str) and _PERMISSION.match(item) for item in value
    ):
        raise AdminInputError(
            f"'{name}' must be a list of permission names such as \"Group.ReadWrite.All\", "
            f"got {json.dumps(value)}"
        )
    return value


def _consent_change(body: dict[str, object]) -> tuple[list[str], list[str]]:
    revoke, grant = _permissions(body, "revoke"), _permissions(body, "grant")
    both = {name.lower() for name in revoke} & {name.lower() for name in grant}
    if both:
        raise AdminInputError(f"'{min(both)}' is in both 'revoke' and 'grant'")
    return revoke, grant


class TenantAdminRoutes:
    def __init__(self, directory: Directory, prefix: str) -> None:
        self._directory = directory
        self._prefix = prefix

    def routes(self) -> list[Route]:
        base = f"{self._prefix}/tenants/{{tenant}}"
        methods = ["GET", "POST"]
        return [
            Route(f"{base}/consent", _answering(self._consent), methods=methods),
            Route(f"{base}/teams/{{team}}/membership", _answering(self._member), methods=methods),
            # :path, so that a channel id with an encoded "/" in it still matches.
            Route(
                f"{base}/teams/{{team}}/channels/{{channel:path}}",
                _answering(self._channel),
                methods=methods,
            ),
        ]

    async def _consent(self, request: Request) -> dict[str, object]:
        tenant = _guid(request, "tenant", "tenant")
        consent = self._directory.consent
        if request.method == "POST":
            revoke, grant = _consent_change(await _json_object(request, _CONSENT_FIELDS))
            consent.change(tenant, revoke=revoke, grant=grant)
        return {"tenant": tenant, "withdrawn": consent.withdrawn_names(tenant)}

    async def _member(self, request: Request) -> dict[str, object]:
        tenant = _guid(request, "tenant", "tenant")
        team = _guid(request, "team", "team (group)")
        if request.method == "POST":
            member = _flag(await _json_object(request, ("member",)), "member")
            self._directory.set_member(tenant, team, member)
        return {"tenant": tenant, "team": team, "member": self._directory.is_member(tenant, team)}

    async def _channel(self, request: Request) -> dict[str, object]:
        tenant = _guid(request, "tenant", "tenant")
        team = _guid(request, "team", "team (group)")
        channel = str(request.path_params["channel"])
        if request.method == "POST":
            exists = _flag(await _json_object(request, ("exists",)), "exists")
            self._directory.set_channel(tenant, team, channel, exists)
        exists_now = self._directory.channel_exists(tenant, team, channel)
        return {"tenant": tenant, "team": team, "channel": channel, "exists": exists_now}


def _answering(handler: _Handler) -> _Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request))
        except AdminInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint
