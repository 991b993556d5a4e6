"""The audience reads: ``GET /v1.0/me/joinedTeams`` and ``GET /v1.0/teams/{team-id}/channels``.

Both answer a Graph collection, ``{"@odata.context", "value": [...]}``, ``page_size`` items at
a time; when more remain, ``@odata.nextLink`` is the URL of the next page (a ``$skiptoken``,
opaque to clients, plus the query options of the first request). A client follows it until a
page has none, exactly as with live Graph, whose page sizes it must never assume.

* joinedTeams: the teams of the token's tenant that its signed-in user is a member of
  (``POST /_sim/tenants/{tenant}/teams/{team}/membership {"member": false}`` removes one).
  Graph documents no OData query options for it; any given (but ``$skiptoken``) is a 400.
  Only ``id``, ``displayName``, ``description``, ``isArchived`` and ``tenantId`` carry values,
  as Graph documents; the other properties are null.
* channels: the team's channels (a channel marked missing is left out), for a team of the
  token's tenant; another team id is ``404``, a team the user is not a member of ``403``.
  ``$filter`` takes ``<property> eq '<value>'`` clauses joined by ``and`` on ``id``,
  ``displayName``, ``description`` and ``membershipType`` (string equality, quotes doubled
  inside a value); ``$select`` takes a comma-separated list of channel properties. Other
  query options are a 400.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote, urlencode

from simulator.directory import Directory
from simulator.errors import GraphError
from simulator.payload import bad_request
from simulator.teamsdir import Channel, Team, TeamsDirectory

SKIPTOKEN = "$skiptoken"
CHANNEL_PROPERTIES = (
    "id",
    "createdDateTime",
    "displayName",
    "description",
    "isFavoriteByDefault",
    "email",
    "tenantId",
    "webUrl",
    "membershipType",
    "isArchived",
)
FILTERABLE = ("id", "displayName", "description", "membershipType")
_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_CREATED = "2024-01-01T00:00:00Z"
"""When every simulated channel was created."""
Json = dict[str, object]


def joined_teams(
    directory: Directory,
    teams: TeamsDirectory,
    tenant_id: str,
    query: Mapping[str, str],
    base_url: str,
) -> Json:
    _only_options(query, (), "/me/joinedTeams")
    members = [team for team in teams.teams(tenant_id) if directory.is_member(tenant_id, team.id)]
    context = f"{base_url}/v1.0/$metadata#teams"
    page_url = f"{base_url}/v1.0/me/joinedTeams"
    items = [_team_json(team, tenant_id) for team in members]
    return _page(items, query, teams.settings.page_size, context, page_url)


def team_channels(
    directory: Directory,
    teams: TeamsDirectory,
    tenant_id: str,
    team_id: str,
    query: Mapping[str, str],
    base_url: str,
) -> Json:
    team = teams.team(tenant_id, team_id)
    if team is None:
        raise GraphError(404, "NotFound", f"No team found with Group Id {team_id}")
    _only_options(query, ("$filter", "$select"), "/teams/{team-id}/channels")
    keep = _filter(query.get("$filter"))
    select = _select(query.get("$select"))
    found = [
        _channel_json(channel, team, tenant_id)
        for channel in teams.channels(tenant_id, team)
        if directory.channel_exists(tenant_id, team.id, channel.id)
    ]
    items = [{name: item[name] for name in select} for item in found if keep(item)]
    context = f"{base_url}/v1.0/$metadata#teams('{team.id}')/channels"
    page_url = f"{base_url}/v1.0/teams/{team.id}/channels"
    return _page(items, query, teams.settings.page_size, context, page_url)


def _only_options(query: Mapping[str, str], allowed: Sequence[str], where: str) -> None:
    for name in query:
        if name.startswith("$") and name != SKIPTOKEN and name not in allowed:
            supported = ", ".join(allowed) or "none"
            raise bad_request(
                f"Query option '{name}' is not supported by {where} (supported: {supported})."
            )


def _filter(raw: str | None) -> Callable[[Json], bool]:
    if raw is None:
        return lambda item: True
    clauses: list[tuple[str, str]] = []
    for clause in _AND.split(raw.strip()):
        match = _CLAUSE.match(clause)
        if match is None:
            raise bad_request(
                f"Invalid filter clause '{clause}' in $filter: use <property> eq '<value>', "
                "joined by 'and'."
            )
        name, value = match[1], match[2].replace("''", "'")
        if name not in FILTERABLE:
            raise bad_request(
                f"Invalid filter clause: the property '{name}' cannot be filtered on; "
                f"$filter takes {', '.join(FILTERABLE)}."
            )
        clauses.append((name, value))
    return lambda item: all(item[name] == value for name, value in clauses)


def _select(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return CHANNEL_PROPERTIES
    names = tuple(name.strip() for name in raw.split(","))
    for name in names:
        if name not in CHANNEL_PROPERTIES:
            raise bad_request(
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.channel'."
            )
    return names


def _page(
    items: list[Json], query: Mapping[str, str], size: int, context: str, page_url: str
) -> Json:
    start = _offset(query.get(SKIPTOKEN), len(items))
    end = start + size
    page: Json = {"@odata.context": context, "value": items[start:end]}
    if end < len(items):
        options = {name: value for name, value in query.items() if name != SKIPTOKEN}
        options[SKIPTOKEN] = _token(end)
        page["@odata.nextLink"] = f"{page_url}?{urlencode(options, quote_via=quote, safe='$')}"
    return page


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o={offset}".encode()).decode().rstrip("=")


def _offset(token: str | None, total: int) -> int:
    if token is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    number = raw[2:] if raw.startswith("o=") else ""
    if not number.isdigit() or int(number) > total:
        raise bad_request(
            f"The $skiptoken '{token}' is not valid: follow @odata.nextLink as given."
        )
    return int(number)


def _team_json(team: Team, tenant_id: str) -> Json:
    unset = (
        "createdDateTime",
        "internalId",
        "classification",
        "specialization",
        "visibility",
        "webUrl",
        "isMembershipLimitedToOwners",
        "memberSettings",
        "guestSettings",
        "messagingSettings",
        "funSettings",
        "discoverySettings",
        "summary",
    )
    return {
        "id": team.id,
        "displayName": team.display_name,
        "description": team.description,
        "isArchived": False,
        "tenantId": tenant_id,
        **dict.fromkeys(unset),
    }


def _channel_json(channel: Channel, team: Team, tenant_id: str) -> Json:
    web_url = (
        f"https://teams.microsoft.com/l/channel/{quote(channel.id, safe='')}/"
        f"{quote(channel.display_name)}?groupId={team.id}&tenantId={tenant_id}"
    )
    return {
        "id": channel.id,
        "createdDateTime": _CREATED,
        "displayName": channel.display_name,
        "description": channel.description,
        "isFavoriteByDefault": None,
        "email": "",
        "tenantId": tenant_id,
        "webUrl": web_url,
        "membershipType": "standard",
        "isArchived": False,
    }
