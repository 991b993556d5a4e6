"""Graph as it answers today, over real HTTPS with real MSAL: the removed chatthreads segment,
each endpoint's own permissions, a tenant's consent, team membership, missing channels.

One simulator serves the module; the directory settings a test changes are on tenants and
teams of its own, so they never leak into another test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import simulator.process
from simulator.knobs import Knobs
from simulator.process import RunningSimulator
from tests.integration.test_simulator import (
    CHANNEL,
    msal_app,
    new_tenant,
    sign_in,
)
from tests.integration.test_simulator_limits import configure, send

CHANNEL_ID = "19:abc@thread.tacv2"
REMOVED = "Resource not found for the segment 'chatThreads'."
MISSING_SCOPE = "Missing scope permissions on the request. API requires one of "


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(tmp_path_factory.mktemp("sim"), device_approve_delay=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator, http: httpx.Client) -> None:
    configure(sim, http, **Knobs().to_json())
    http.post(f"{sim.admin_url}/reset").raise_for_status()


def stats(sim: RunningSimulator, http: httpx.Client) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}/stats").raise_for_status().json())


def sign_in_for(
    sim: RunningSimulator, http: httpx.Client, tenant: str, scopes: list[str]
) -> tuple[Any, dict[str, Any]]:
    app = msal_app(sim, http, tenant)
    result = app.acquire_token_by_device_flow(app.initiate_device_flow(scopes=scopes))
    assert "access_token" in result, result
    return app, result


def scp(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["scp"])


def graph_error(response: httpx.Response, status: int, code: str) -> str:
    """The message of a Graph error answer, checked to have Graph's exact shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert (set(error), error["code"]) == ({"code", "message", "innerError"}, code)
    inner = error["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    return str(error["message"])


def admin_post(
    sim: RunningSimulator, http: httpx.Client, path: str, body: object
) -> httpx.Response:
    return http.post(f"{sim.admin_url}{path}", json=body)


# --- the removed chatthreads segment ---------------------------------------------------------


def test_chatthreads_removed_answers_as_graph_does_today(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    token = str(sign_in(sim, http, new_tenant())[1]["access_token"])
    team = str(uuid.uuid4())
    assert send(sim, http, token, team).status_code == 204  # off by default: the seed's answer
    assert configure(sim, http, chatthreads_removed=True)["chatthreads_removed"] is True

    removed = send(sim, http, token, team)
    assert graph_error(removed, 400, "BadRequest") == REMOVED
    url = f"{sim.graph_url}/beta/groups/{team}/channels/{CHANNEL}/chatthreads"
    headers = {"content-type": "application/json", "client-request-id": "mine"}
    no_token = http.post(url, content=b"{}", headers=headers)  # decided before the token
    assert graph_error(no_token, 400, "BadRequest") == REMOVED
    assert no_token.headers["client-request-id"] == "mine"
    assert send(sim, http, token, team, v1=True).status_code == 201  # its successor works

    current = stats(sim, http)
    assert (current["accepted"], current["rejected"]) == (2, {"400": 2})
    posts = http.get(f"{sim.admin_url}/posts").json()["posts"]
    assert [post["endpoint"] for post in posts] == ["chatthreads", "channel-messages"]

    configure(sim, http, chatthreads_removed=False)
    assert send(sim, http, token, team).status_code == 204
    refused = admin_post(sim, http, "/config", {"chatthreads_removed": "yes"})
    assert refused.status_code == 400
    assert "'chatthreads_removed' must be true or false" in refused.json()["error"]


def test_the_flag_removes_chatthreads_from_the_start(tmp_path: Path) -> None:
    flags = ["--chatthreads-removed"]
    with (
        simulator.process.start(tmp_path, device_approve_delay=0, extra_args=flags) as sim,
        httpx.Client(verify=sim.ssl_context(), timeout=10) as http,
    ):
        assert http.get(f"{sim.admin_url}/config").json()["chatthreads_removed"] is True
        token = str(sign_in(sim, http, new_tenant())[1]["access_token"])
        assert graph_error(send(sim, http, token, str(uuid.uuid4())), 400, "BadRequest") == (
            REMOVED
        )


# --- each endpoint's permissions --------------------------------------------------------------


def test_channel_messages_need_only_channelmessage_send(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    token = str(sign_in_for(sim, http, tenant, ["ChannelMessage.Send"])[1]["access_token"])
    assert scp(token) == "ChannelMessage.Send"
    team = str(uuid.uuid4())
    assert send(sim, http, token, team, v1=True).status_code == 201
    assert graph_error(send(sim, http, token, team), 403, "Forbidden") == (
        f"{MISSING_SCOPE}'Group.ReadWrite.All'. Scopes on the request 'ChannelMessage.Send'"
    )

    reader = str(sign_in_for(sim, http, tenant, ["User.Read"])[1]["access_token"])
    assert graph_error(send(sim, http, reader, team, v1=True), 403, "Forbidden") == (
        f"{MISSING_SCOPE}'ChannelMessage.Send, Group.ReadWrite.All'. "
        "Scopes on the request 'User.Read'"
    )
    assert stats(sim, http)["rejected"] == {"403": 2}


# --- a tenant's consent -----------------------------------------------------------------------


def consent(
    sim: RunningSimulator, http: httpx.Client, tenant: str, **change: list[str]
) -> dict[str, Any]:
    answer = admin_post(sim, http, f"/tenants/{tenant}/consent", change)
    return dict(answer.raise_for_status().json())


def test_withdrawing_consent_refuses_at_once_and_shapes_the_next_tokens(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    app, result = sign_in_for(sim, http, tenant, ["Group.ReadWrite.All"])
    token = str(result["access_token"])
    team = str(uuid.uuid4())
    assert send(sim, http, token, team).status_code == 204

    withdrawn = consent(sim, http, tenant, revoke=["Group.ReadWrite.All"])
    assert withdrawn == {"tenant": tenant, "withdrawn": ["Group.ReadWrite.All"]}
    # Stricter than Graph, which honours the token until it expires: refused right away.
    assert graph_error(send(sim, http, token, team), 403, "Forbidden") == (
        f"{MISSING_SCOPE}'Group.ReadWrite.All'. Scopes on the request '(none)'"
    )
    [account] = app.get_accounts()
    renewed = app.acquire_token_silent_with_error(
        ["Group.ReadWrite.All"], account=account, force_refresh=True
    )
    assert renewed and "access_token" in renewed, renewed
    assert scp(renewed["access_token"]) == ""  # the refresh works, the permission is gone
    message = graph_error(send(sim, http, renewed["access_token"], team), 403, "Forbidden")
    assert message.startswith("Missing scope permissions")
    later = sign_in_for(sim, http, tenant, ["Group.ReadWrite.All"])[1]["access_token"]
    assert scp(later) == ""  # a new sign-in gets no more than the tenant consents to

    assert consent(sim, http, tenant, grant=["group.readwrite.all"])["withdrawn"] == []
    again = app.acquire_token_silent_with_error(
        ["Group.ReadWrite.All"], account=account, force_refresh=True
    )
    assert again and scp(again["access_token"]) == "Group.ReadWrite.All", again
    assert send(sim, http, again["access_token"], team).status_code == 204
    assert send(sim, http, token, team).status_code == 204  # the first token works again
    assert stats(sim, http)["rejected"] == {"403": 2}


def test_least_privilege_survives_withdrawing_group_readwrite_all(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant, team = new_tenant(), str(uuid.uuid4())
    consent(sim, http, tenant, revoke=["Group.ReadWrite.All"])
    both = ["Group.ReadWrite.All", "ChannelMessage.Send"]
    token = str(sign_in_for(sim, http, tenant, both)[1]["access_token"])
    assert scp(token) == "ChannelMessage.Send"
    assert send(sim, http, token, team, v1=True).status_code == 201
    assert graph_error(send(sim, http, token, team), 403, "Forbidden").startswith(
        "Missing scope permissions on the request."
    )
    other_tenant = str(sign_in(sim, http, new_tenant())[1]["access_token"])
    assert send(sim, http, other_tenant, team).status_code == 204  # only that tenant's consent
    assert http.get(f"{sim.admin_url}/tenants/{tenant}/consent").json() == {
        "tenant": tenant,
        "withdrawn": ["Group.ReadWrite.All"],
    }


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"revoke": "Group.ReadWrite.All"}, "'revoke' must be a list of permission names"),
        ({"grant": ["not a permission"]}, "'grant' must be a list of permission names"),
        ({"revoke": [1]}, "'revoke' must be a list of permission names"),
        ({"revokes": ["Group.ReadWrite.All"]}, "unknown field 'revokes'"),
        ({}, "the body must be a JSON object with 'revoke', 'grant'"),
        ([], "the body must be a JSON object"),
        (
            {"revoke": ["Group.ReadWrite.All"], "grant": ["GROUP.READWRITE.ALL"]},
            "'group.readwrite.all' is in both 'revoke' and 'grant'",
        ),
    ],
)
def test_bad_consent_changes_are_refused_by_name(
    sim: RunningSimulator, http: httpx.Client, body: object, names: str
) -> None:
    tenant = new_tenant()
    answer = admin_post(sim, http, f"/tenants/{tenant}/consent", body)
    assert answer.status_code == 400
    assert names in answer.json()["error"]
    assert http.get(f"{sim.admin_url}/tenants/{tenant}/consent").json()["withdrawn"] == []


def test_the_directory_routes_want_guids(sim: RunningSimulator, http: httpx.Client) -> None:
    tenant, team = new_tenant(), str(uuid.uuid4())
    for path, body, names in [
        ("/tenants/nope/consent", {"revoke": ["A.B"]}, "'nope' is not a tenant GUID"),
        (f"/tenants/{tenant}/teams/nope/membership", {"member": False}, "'nope' is not a team"),
        (f"/tenants/nope/teams/{team}/channels/19%3Aa", {"exists": False}, "'nope' is not a"),
    ]:
        answer = admin_post(sim, http, path, body)
        assert (answer.status_code, names in answer.json()["error"]) == (400, True), path


# --- team membership and missing channels -----------------------------------------------------


def membership(
    sim: RunningSimulator, http: httpx.Client, tenant: str, team: str, member: object
) -> httpx.Response:
    return admin_post(sim, http, f"/tenants/{tenant}/teams/{team}/membership", {"member": member})


def test_a_user_who_is_not_a_member_of_the_team_cannot_post_there(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    token = str(sign_in(sim, http, tenant)[1]["access_token"])
    team, other = str(uuid.uuid4()), str(uuid.uuid4())
    answer = membership(sim, http, tenant, team.upper(), False)
    assert answer.json() == {"tenant": tenant, "team": team, "member": False}

    for v1 in (False, True):
        message = graph_error(send(sim, http, token, team, v1=v1), 403, "Forbidden")
        assert message.startswith("User is not a member of the team")
        assert not message.startswith("Missing scope permissions")
        assert team in message
    assert send(sim, http, token, other).status_code == 204
    neighbour = str(sign_in(sim, http, new_tenant())[1]["access_token"])
    assert send(sim, http, neighbour, team).status_code == 204  # another tenant's user is in
    current = stats(sim, http)
    assert (current["accepted"], current["rejected"]) == (2, {"403": 2})
    http.post(f"{sim.admin_url}/reset").raise_for_status()  # describes the tenant: it stays
    assert send(sim, http, token, team).status_code == 403

    assert membership(sim, http, tenant, team, True).json()["member"] is True
    assert send(sim, http, token, team).status_code == 204
    url = f"{sim.admin_url}/tenants/{tenant}/teams/{team}/membership"
    assert http.get(url).json() == {"tenant": tenant, "team": team, "member": True}
    refused = membership(sim, http, tenant, team, "no")
    assert (refused.status_code, refused.json()["error"]) == (
        400,
        "'member' must be true or false, got \"no\"",
    )


def test_the_token_and_the_segment_are_judged_before_membership(
    sim: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    team = str(uuid.uuid4())
    membership(sim, http, tenant, team, False).raise_for_status()
    assert send(sim, http, "garbage", team).status_code == 401
    reader = str(sign_in_for(sim, http, tenant, ["User.Read"])[1]["access_token"])
    assert graph_error(send(sim, http, reader, team, v1=True), 403, "Forbidden").startswith(
        "Missing scope permissions"  # the tenant-level refusal comes first
    )
    configure(sim, http, chatthreads_removed=True)
    assert graph_error(send(sim, http, reader, team), 400, "BadRequest") == REMOVED


def test_a_channel_that_does_not_exist_is_404(sim: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    token = str(sign_in(sim, http, tenant)[1]["access_token"])
    team = str(uuid.uuid4())
    path = f"/tenants/{tenant}/teams/{team}/channels/{CHANNEL}"
    answer = admin_post(sim, http, path, {"exists": False}).json()
    assert answer == {"tenant": tenant, "team": team, "channel": CHANNEL_ID, "exists": False}

    for v1 in (False, True):
        message = graph_error(send(sim, http, token, team, v1=v1), 404, "NotFound")
        assert CHANNEL_ID in message
    assert send(sim, http, token, team, channel="19%3Aother").status_code == 204
    assert stats(sim, http)["rejected"] == {"404": 2}

    assert admin_post(sim, http, path, {"exists": True}).json()["exists"] is True
    assert send(sim, http, token, team).status_code == 204
    refused = admin_post(sim, http, path, {"exists": 0})
    assert (refused.status_code, "'exists' must be true or false" in refused.json()["error"]) == (
        400,
        True,
    )
