"""The audience reads (``/me/joinedTeams``, ``/teams/{id}/channels``) over real HTTPS with real
MSAL: the deterministic teams directory, paging, $filter/$select, membership and missing
channels, permissions, and their own throttle limits.

One simulator serves the module; each test starts from a reset with the default settings,
on tenants of its own where it changes the directory.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from simulator.process import RunningSimulator
from tests.integration import test_simulator_messages as messages
from tests.integration.test_simulator import move_clock, new_tenant
from tests.integration.test_simulator_graph_today import graph_error
from tests.integration.test_simulator_messages import (
    ALL_SCOPES,
    admin,
    admin_get,
    html,
    post,
    token_for,
)

# One simulator per module, an HTTPS client, a signed-in tenant and a reset before each test,
# as the messages module has them.
sim = messages.sim
http = messages.http
signed_in = messages.signed_in
fresh = messages.fresh


TEAM_FIELDS = {"id", "displayName", "description", "isArchived", "tenantId"}


def get(http: httpx.Client, url: str, token: str, **params: str) -> httpx.Response:
    return http.get(url, params=params, headers={"authorization": f"Bearer {token}"})


def joined_url(sim: RunningSimulator) -> str:
    return f"{sim.graph_url}/v1.0/me/joinedTeams"


def channels_url(sim: RunningSimulator, team: str) -> str:
    return f"{sim.graph_url}/v1.0/teams/{team}/channels"


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert uuid.UUID(response.headers["request-id"])
    return dict(response.json())


def every_page(http: httpx.Client, first: httpx.Response, token: str) -> list[dict[str, Any]]:
    """Follow @odata.nextLink as a Graph client must, collecting every item."""
    page = ok(first)
    items = list(page["value"])
    while "@odata.nextLink" in page:
        page = ok(http.get(page["@odata.nextLink"], headers={"authorization": f"Bearer {token}"}))
        items += page["value"]
    return items


def teams_of(sim: RunningSimulator, http: httpx.Client, token: str) -> list[dict[str, Any]]:
    return every_page(http, get(http, joined_url(sim), token), token)


# --- joinedTeams ------------------------------------------------------------------------------


def test_joined_teams_are_the_tenants_ten_teams_in_pages(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    first = ok(get(http, joined_url(sim), token))
    assert first["@odata.context"] == f"{sim.graph_url}/v1.0/$metadata#teams"
    assert len(first["value"]) == 10 and "@odata.nextLink" not in first  # page size 20
    names = [team["displayName"] for team in first["value"]]
    assert names[:3] == ["Engineering", "Sales", "Marketing"] and len(set(names)) == 10
    team = first["value"][0]
    assert {name for name, value in team.items() if value is not None} == TEAM_FIELDS
    assert (team["tenantId"], team["isArchived"]) == (tenant, False)
    assert uuid.UUID(team["id"])

    admin(sim, http, "/config/v1", {"page_size": 4})
    paged = get(http, joined_url(sim), token)
    assert len(ok(paged)["value"]) == 4
    assert "$skiptoken=" in ok(paged)["@odata.nextLink"]
    assert [t["id"] for t in every_page(http, paged, token)] == [t["id"] for t in first["value"]]
    assert teams_of(sim, http, token_for(sim, http, tenant, ALL_SCOPES)) == first["value"]


def test_another_tenant_has_other_teams_and_the_sizes_are_settings(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    other = token_for(sim, http, new_tenant(), ALL_SCOPES)
    mine, theirs = teams_of(sim, http, token), teams_of(sim, http, other)
    assert not {t["id"] for t in mine} & {t["id"] for t in theirs}
    assert [t["displayName"] for t in mine] == [t["displayName"] for t in theirs]

    settings = admin(sim, http, "/config/v1", {"teams_per_tenant": 23, "channels_per_team": 5})
    assert (settings["teams_per_tenant"], settings["channels_per_team"]) == (23, 5)
    many = teams_of(sim, http, token)
    assert len(many) == 23 and many[:10] == mine
    assert [t["displayName"] for t in many[10:12]] == ["Engineering 2", "Sales 2"]
    channels = ok(get(http, channels_url(sim, many[22]["id"]), token))["value"]
    assert [c["displayName"] for c in channels] == [
        "General",
        "Announcements",
        "Projects",
        "Random",
        "Help",
    ]
    admin(sim, http, "/config/v1", {"teams_per_tenant": 0})
    assert ok(get(http, joined_url(sim), token))["value"] == []


def test_a_team_the_user_left_is_not_joined_and_its_channels_are_403(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    token = token_for(sim, http, tenant, ALL_SCOPES)
    left = teams_of(sim, http, token)[3]["id"]
    admin(sim, http, f"/tenants/{tenant}/teams/{left}/membership", {"member": False})
    remaining = teams_of(sim, http, token)
    assert len(remaining) == 9 and left not in {t["id"] for t in remaining}
    refused = get(http, channels_url(sim, left), token)
    assert graph_error(refused, 403, "Forbidden").startswith("User is not a member of the team")
    admin(sim, http, f"/tenants/{tenant}/teams/{left}/membership", {"member": True})
    assert len(teams_of(sim, http, token)) == 10


def test_joined_teams_take_no_query_options(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    for option in ("$filter", "$select", "$top"):
        refused = get(http, joined_url(sim), token, **{option: "x"})
        message = graph_error(refused, 400, "BadRequest")
        assert f"Query option '{option}' is not supported by /me/joinedTeams" in message
    bad_token = get(http, joined_url(sim), token, **{"$skiptoken": "garbage"})
    assert "The $skiptoken 'garbage' is not valid" in graph_error(bad_token, 400, "BadRequest")


# --- a team's channels ------------------------------------------------------------------------


def test_a_teams_channels_with_filter_select_and_paging(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    team = teams_of(sim, http, token)[1]["id"]
    page = ok(get(http, channels_url(sim, team), token))
    assert page["@odata.context"] == f"{sim.graph_url}/v1.0/$metadata#teams('{team}')/channels"
    channels = page["value"]
    assert [c["displayName"] for c in channels] == ["General", "Announcements", "Projects"]
    general = channels[0]
    assert general["id"].startswith("19:") and general["id"].endswith("@thread.tacv2")
    assert (general["membershipType"], general["tenantId"]) == ("standard", tenant)
    assert ok(get(http, channels_url(sim, team), token))["value"] == channels  # deterministic

    only = get(http, channels_url(sim, team), token, **{"$filter": "displayName eq 'General'"})
    assert ok(only)["value"] == [general]
    both = "displayName eq 'General' and membershipType eq 'standard'"
    assert ok(get(http, channels_url(sim, team), token, **{"$filter": both}))["value"] == [general]
    none = get(http, channels_url(sim, team), token, **{"$filter": "displayName eq 'general'"})
    assert ok(none)["value"] == []
    selected = get(http, channels_url(sim, team), token, **{"$select": "id,displayName"})
    assert ok(selected)["value"][0] == {"id": general["id"], "displayName": "General"}

    admin(sim, http, "/config/v1", {"page_size": 2, "channels_per_team": 7})
    standard = {"$filter": "membershipType eq 'standard'", "$select": "displayName"}
    first = get(http, channels_url(sim, team), token, **standard)
    assert "$filter=membershipType%20eq%20%27standard%27" in ok(first)["@odata.nextLink"]
    seven = ["General", "Announcements", "Projects", "Random", "Help", "Releases", "Events"]
    assert every_page(http, first, token) == [{"displayName": name} for name in seven]


def test_a_missing_channel_is_not_listed(sim: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    token = token_for(sim, http, tenant, ALL_SCOPES)
    team = teams_of(sim, http, token)[0]["id"]
    general = ok(get(http, channels_url(sim, team), token))["value"][0]["id"]
    path = f"/tenants/{tenant}/teams/{team}/channels/{general.replace(':', '%3A')}"
    admin(sim, http, path, {"exists": False})
    names = [c["displayName"] for c in ok(get(http, channels_url(sim, team), token))["value"]]
    assert names == ["Announcements", "Projects"]


def test_an_unknown_team_is_404(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    unknown = str(uuid.uuid4())
    missing = get(http, channels_url(sim, unknown), token)
    assert graph_error(missing, 404, "NotFound") == f"No team found with Group Id {unknown}"
    theirs = teams_of(sim, http, token_for(sim, http, new_tenant(), ALL_SCOPES))[0]["id"]
    graph_error(get(http, channels_url(sim, theirs), token), 404, "NotFound")
    not_guid = get(http, channels_url(sim, "sales"), token)
    assert "Invalid object identifier 'sales'" in graph_error(not_guid, 400, "BadRequest")
    wrong_method = http.post(
        channels_url(sim, unknown), headers={"authorization": f"Bearer {token}"}
    )
    assert "'POST' is not allowed; use GET" in graph_error(wrong_method, 405, "Request_BadRequest")


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"$filter": "displayName ne 'General'"}, "Invalid filter clause 'displayName ne"),
        ({"$filter": "startswith(displayName, 'G')"}, "Invalid filter clause 'startswith("),
        ({"$filter": "email eq ''"}, "the property 'email' cannot be filtered on"),
        ({"$select": "id,colour"}, "Could not find a property named 'colour'"),
        ({"$top": "1"}, "Query option '$top' is not supported"),
        ({"$expand": "members"}, "Query option '$expand' is not supported"),
        ({"$skiptoken": "bz05OTk"}, "is not valid: follow @odata.nextLink as given"),
    ],
)
def test_bad_channel_queries_are_400_naming_the_option(
    sim: RunningSimulator,
    http: httpx.Client,
    signed_in: tuple[str, str],
    options: dict[str, str],
    names: str,
) -> None:
    token = signed_in[1]
    team = teams_of(sim, http, token)[0]["id"]
    response = get(http, channels_url(sim, team), token, **options)
    assert names in graph_error(response, 400, "BadRequest")


# --- permissions, throttling, faults ----------------------------------------------------------


def test_each_read_needs_its_permission(sim: RunningSimulator, http: httpx.Client) -> None:
    legacy = token_for(sim, http, new_tenant(), ["Group.ReadWrite.All"])
    refused = get(http, joined_url(sim), legacy)
    message = graph_error(refused, 403, "Forbidden")
    assert (
        "Team.ReadBasic.All" in message and "Scopes on the request 'Group.ReadWrite.All'" in message
    )
    channels_only = token_for(sim, http, new_tenant(), ["Channel.ReadBasic.All"])
    graph_error(get(http, joined_url(sim), channels_only), 403, "Forbidden")
    teams_only_tenant = new_tenant()
    teams_only = token_for(sim, http, teams_only_tenant, ["Team.ReadBasic.All"])
    team = teams_of(sim, http, teams_only)[0]["id"]
    no_channels = get(http, channels_url(sim, team), teams_only)
    assert "Channel.ReadBasic.All" in graph_error(no_channels, 403, "Forbidden")
    # Group.ReadWrite.All (threadcast's sign-in) lists channels, as Graph allows.
    both = token_for(sim, http, teams_only_tenant, ["Team.ReadBasic.All", "Group.ReadWrite.All"])
    assert len(ok(get(http, channels_url(sim, team), both))["value"]) == 3


def test_reads_have_their_own_limits_and_share_the_team_one(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    team = teams_of(sim, http, token)[0]["id"]
    admin(sim, http, "/config/v1", {"joined_teams_tenant_rps": 1, "channels_tenant_rps": 2})
    move_clock(sim, http, advance=2)
    assert get(http, joined_url(sim), token).status_code == 200
    throttled = get(http, joined_url(sim), token)
    assert "joinedTeams requests per second in tenant" in graph_error(
        throttled, 429, "TooManyRequests"
    )
    assert int(throttled.headers["Retry-After"]) >= 1
    assert [get(http, channels_url(sim, team), token).status_code for _ in range(2)] == [200, 200]
    over = get(http, channels_url(sim, team), token)
    assert "channel list requests per second" in graph_error(over, 429, "TooManyRequests")
    assert post(sim, http, token, team, {"body": html("posts are apart")}).status_code == 201
    scopes = admin_get(sim, http, "/throttle")["scopes"]
    assert scopes[f"joined_teams_tenant:{tenant}"]["throttled"] == 1
    assert scopes[f"channels_tenant:{tenant}"]["max_window"] == 2

    admin(sim, http, "/config/v1", {"joined_teams_tenant_rps": 0, "channels_tenant_rps": 0})
    admin(sim, http, "/config", {"team_rps": 1})
    move_clock(sim, http, advance=2)
    assert post(sim, http, token, team, {"body": html("one")}).status_code == 201
    shared = get(http, channels_url(sim, team), token)
    assert "requests per second on team" in graph_error(shared, 429, "TooManyRequests")
    assert get(http, joined_url(sim), token).status_code == 200  # not a request on a team


def test_reads_draw_no_faults_and_posts_stay_permissive(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    admin(sim, http, "/config", {"fault_503": 1.0})
    team = teams_of(sim, http, token)[0]["id"]
    assert get(http, channels_url(sim, team), token).status_code == 200
    admin(sim, http, "/config", {"fault_503": 0.0})
    general = ok(get(http, channels_url(sim, team), token))["value"][0]["id"]
    assert post(sim, http, token, team, {"body": html("to General")}, general).status_code == 201
    anywhere = post(sim, http, token, str(uuid.uuid4()), {"body": html("x")}, "19:any@thread.v2")
    assert anywhere.status_code == 201
    assert admin_get(sim, http, "/stats")["accepted"] == 2
