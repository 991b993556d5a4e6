"""Small protocol pieces: tenant segments, scopes, the chatthreads URL."""

from __future__ import annotations

import pytest

from simulator.discovery import openid_configuration
from simulator.errors import GraphError, IdentityError
from simulator.graphpaths import GraphTarget, graph_target
from simulator.scopes import parse_scopes
from simulator.tenants import HOME_TENANT, parse_tenant, user_for

GUID = "0B7D3F2A-5C1E-4A8B-9D6F-1E2A3B4C5D6E"


def test_tenant_segments() -> None:
    assert parse_tenant(GUID).tenant_id == GUID.lower()
    organizations = parse_tenant("Organizations")
    assert (organizations.segment, organizations.tenant_id) == ("organizations", HOME_TENANT)
    assert organizations.is_multi_tenant
    with pytest.raises(IdentityError) as caught:
        parse_tenant("contoso")
    assert (caught.value.error, caught.value.aadsts) == ("invalid_tenant", 90002)


def test_the_simulated_user_is_stable_per_tenant() -> None:
    assert user_for(GUID.lower()) == user_for(GUID.lower())
    assert user_for(GUID.lower()).upn == "admin@0b7d3f2a.onmicrosoft.test"


@pytest.mark.parametrize(
    ("requested", "graph", "response_scope"),
    [
        (
            "Group.ReadWrite.All offline_access openid profile",
            ("Group.ReadWrite.All",),
            "Group.ReadWrite.All openid profile",
        ),
        ("https://graph.microsoft.com/.default", ("Group.ReadWrite.All",), "Group.ReadWrite.All"),
        ("openid", ("Group.ReadWrite.All",), "Group.ReadWrite.All openid"),
        ("User.Read https://graph.microsoft.com/User.Read", ("User.Read",), "User.Read"),
    ],
)
def test_scopes(requested: str, graph: tuple[str, ...], response_scope: str) -> None:
    grant = parse_scopes(requested)
    assert grant.graph == graph
    assert grant.response_scope() == response_scope
    assert grant.wants_refresh_token == ("offline_access" in requested)


def test_discovery_of_a_multi_tenant_endpoint_has_a_templated_issuer() -> None:
    config = openid_configuration("https://127.0.0.1:1", "organizations")
    assert config["issuer"] == "https://127.0.0.1:1/{tenantid}/v2.0"
    assert config["token_endpoint"] == "https://127.0.0.1:1/organizations/oauth2/v2.0/token"


def test_the_channel_id_is_percent_decoded_exactly_once() -> None:
    path = f"/beta/groups/{GUID}/channels/19%3Aab%2Fc%40thread.tacv2/chatthreads".encode()
    assert graph_target(path, "POST") == GraphTarget(
        "chatthreads", GUID.lower(), "19:ab/c@thread.tacv2"
    )
    double = f"/beta/groups/{GUID}/channels/19%253Aabc/chatthreads".encode()
    assert graph_target(double, "POST").channel_id == "19%3Aabc"


def test_the_v1_channel_messages_url_names_the_team() -> None:
    path = f"/v1.0/teams/{GUID}/channels/19%3Aabc%40thread.tacv2/messages".encode()
    assert graph_target(path, "POST") == GraphTarget(
        "channel-messages", GUID.lower(), "19:abc@thread.tacv2"
    )


@pytest.mark.parametrize(
    ("path", "method", "status", "message"),
    [
        (f"/beta/groups/{GUID}/channels/c/messages", "POST", 400, "segment 'messages'"),
        (f"/v1.0/groups/{GUID}/channels/c/chatthreads", "POST", 400, "segment 'chatthreads'"),
        (f"/beta/groups/{GUID}/channels/c/chatthreads", "GET", 405, "'GET'"),
        ("/beta/groups/not-a-guid/channels/c/chatthreads", "POST", 400, "'not-a-guid'"),
        (f"/beta/groups/{GUID}/channels/%FF/chatthreads", "POST", 400, "UTF-8"),
        (f"/v1.0/teams/{GUID}/channels/c/chatthreads", "POST", 400, "segment 'chatthreads'"),
        (f"/beta/teams/{GUID}/channels/c/messages/x", "POST", 400, "segment 'x'"),
        (f"/v1.0/teams/{GUID}/channels/c/messages", "GET", 405, "'GET'"),
        ("/v1.0/teams/not-a-guid/channels/c/messages", "POST", 400, "'not-a-guid'"),
    ],
)
def test_other_urls_get_graph_errors(path: str, method: str, status: int, message: str) -> None:
    with pytest.raises(GraphError) as caught:
        graph_target(path.encode(), method)
    assert caught.value.status == status
    assert message in caught.value.message
