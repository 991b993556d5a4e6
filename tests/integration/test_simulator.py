"""The simulator as its users meet it: a real subprocess over HTTPS, real MSAL, real httpx."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest

import simulator.process
from simulator.errors import StartupError
from simulator.process import RunningSimulator
from simulator.tenants import HOME_TENANT

CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
SCOPES = ["Group.ReadWrite.All"]
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SEED_BODY = b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'
CHANNEL = "19%3Aabc%40thread.tacv2"
APPROVE_DELAY = 1.0


@pytest.fixture(scope="module")
def sim_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(
        tmp_path_factory.mktemp("simulator"), device_approve_delay=APPROVE_DELAY, test_clock=True
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(sim_proc: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(verify=sim_proc.ssl_context(), timeout=10) as client:
        yield client


def move_clock(sim: RunningSimulator, http: httpx.Client, **change: float) -> dict[str, Any]:
    """Move a ``--test-clock`` simulator's clock: ``advance=s`` or ``offset=s`` (0: real time)."""
    return dict(http.post(f"{sim.admin_url}/clock", json=change).raise_for_status().json())


@pytest.fixture
def real_time_after(sim_proc: RunningSimulator, http: httpx.Client) -> Iterator[None]:
    """The test may move the simulator's clock; the next test finds it on real time again
    (tokens issued ahead of the wall clock would be "not yet valid" to PyJWT)."""
    yield
    move_clock(sim_proc, http, offset=0)


def new_tenant() -> str:
    return str(uuid.uuid4())


def msal_app(sim: RunningSimulator, http: httpx.Client, tenant: str) -> Any:
    return msal.PublicClientApplication(
        CLIENT_ID, authority=sim.authority(tenant), instance_discovery=False, http_client=http
    )


def sign_in(sim: RunningSimulator, http: httpx.Client, tenant: str) -> tuple[Any, dict[str, Any]]:
    app = msal_app(sim, http, tenant)
    flow = app.initiate_device_flow(scopes=SCOPES)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return app, result


def token_endpoint(sim: RunningSimulator, tenant: str) -> str:
    return f"{sim.authority_host}/{tenant}/oauth2/v2.0/token"


def refresh(
    sim: RunningSimulator, http: httpx.Client, tenant: str, token: str, client_id: str = CLIENT_ID
) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": client_id,
        "scope": "Group.ReadWrite.All offline_access openid profile",
    }
    return http.post(token_endpoint(sim, tenant), data=form)


def stats(sim: RunningSimulator, http: httpx.Client) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}/stats").raise_for_status().json())


def posts(sim: RunningSimulator, http: httpx.Client, **params: int) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}/posts", params=params).raise_for_status().json())


def chatthreads_url(sim: RunningSimulator, group: str, channel: str = CHANNEL) -> str:
    return f"{sim.graph_url}/beta/groups/{group}/channels/{channel}/chatthreads"


def post_thread(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    body: bytes = SEED_BODY,
    group: str = "",
    channel: str = CHANNEL,
    **headers: str,
) -> httpx.Response:
    all_headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    all_headers |= {name.replace("_", "-"): value for name, value in headers.items()}
    url = chatthreads_url(sim, group or str(uuid.uuid4()), channel)
    return http.post(url, content=body, headers=all_headers)


def assert_aad_error(response: httpx.Response, error: str, code: int) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = dict(response.json())
    assert (body["error"], body["error_codes"]) == (error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    for field in ("timestamp", "trace_id", "correlation_id"):
        assert body[field]
    return body


def assert_graph_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = dict(response.json()["error"])
    assert error["code"] == code
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert inner["date"]
    return error


@pytest.fixture(scope="module")
def signed_in(sim_proc: RunningSimulator, http: httpx.Client) -> tuple[str, str]:
    """(tenant, access token) for the Graph tests."""
    tenant = new_tenant()
    _, result = sign_in(sim_proc, http, tenant)
    return tenant, str(result["access_token"])


# --- process, ready file, TLS -----------------------------------------------------------------


def test_the_ready_file_describes_a_listening_simulator(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    assert sim_proc.graph_url.startswith("https://127.0.0.1:")
    assert sim_proc.authority_host == sim_proc.graph_url
    assert sim_proc.admin_url == f"{sim_proc.graph_url}/_sim"
    assert sim_proc.ca_bundle.is_absolute() and sim_proc.ca_bundle.name == "ca.pem"
    assert http.get(f"{sim_proc.admin_url}/health").json() == {"ok": True}
    assert "ca_bundle=" in sim_proc.log_path.read_text()


def test_the_ca_is_reused_across_restarts(tmp_path: Path) -> None:
    with simulator.process.start(tmp_path) as first:
        ca_pem = first.ca_bundle.read_bytes()
        context = first.ssl_context()
        server_pem = (tmp_path / "server.pem").read_bytes()
    assert first.process.returncode == 0
    assert not list(tmp_path.glob("ready-*.json"))
    with simulator.process.start(tmp_path) as second:
        assert second.ca_bundle.read_bytes() == ca_pem
        assert (tmp_path / "server.pem").read_bytes() != server_pem
        with httpx.Client(verify=context) as client:  # trust built from the first run's CA
            assert client.get(f"{second.admin_url}/health").status_code == 200


def test_a_simulator_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="must be a positive integer"):
        simulator.process.start(tmp_path, token_lifetime=0)


# --- identity platform ------------------------------------------------------------------------


def test_discovery_document(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    base = f"{sim_proc.authority_host}/{tenant}"
    config = http.get(f"{base}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{base}/v2.0"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert config["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert config["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"


def test_multi_tenant_and_garbage_tenants(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    host = sim_proc.authority_host
    common = http.get(f"{host}/common/v2.0/.well-known/openid-configuration")
    assert common.json()["issuer"] == f"{host}/{{tenantid}}/v2.0"
    garbage = http.get(f"{host}/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert_aad_error(garbage, "invalid_tenant", 90002)


@pytest.mark.usefixtures("real_time_after")
def test_the_test_clock_moves_forward_and_back_to_real_time(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    url = f"{sim_proc.admin_url}/clock"
    assert http.get(url).json()["offset"] == 0
    moved = move_clock(sim_proc, http, advance=30)
    ahead = datetime.fromisoformat(moved["now"]) - datetime.now(UTC)
    assert moved["offset"] == 30 and 29 < ahead.total_seconds() <= 30
    assert move_clock(sim_proc, http, advance=0.5)["offset"] == 30.5
    for bad in (
        '{"advance": -1}',
        '{"advance": "1"}',
        '{"advance": true}',
        '{"offset": NaN}',
        '{"offset": null}',
        '{"advance": 1, "offset": 0}',
        '{"later": 1}',
        "{}",
        "[1]",
        "{",
    ):
        refused = http.post(url, content=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]
    assert http.get(url).json()["offset"] == 30.5  # a refused change changes nothing
    assert move_clock(sim_proc, http, offset=0)["offset"] == 0


@pytest.mark.usefixtures("real_time_after")
def test_device_code_flow_on_the_wire(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    base = f"{sim_proc.authority_host}/{tenant}/oauth2/v2.0"
    flow = http.post(
        f"{base}/devicecode",
        data={"client_id": CLIENT_ID, "scope": "Group.ReadWrite.All offline_access openid"},
    ).json()
    assert flow["interval"] == 1 and flow["expires_in"] > 0
    assert flow["message"] == (
        f"To sign in, use a web browser to open the page {flow['verification_uri']} and enter "
        f"the code {flow['user_code']} to authenticate."
    )
    redeem = {
        "grant_type": DEVICE_CODE_GRANT,
        "client_id": CLIENT_ID,
        "client_info": "1",
        "device_code": flow["device_code"],
    }
    pending = http.post(f"{base}/token", data=redeem, headers={"client-request-id": "corr-1"})
    assert assert_aad_error(pending, "authorization_pending", 70016)["correlation_id"] == "corr-1"
    move_clock(sim_proc, http, advance=APPROVE_DELAY)  # the user approves meanwhile
    tokens = http.post(f"{base}/token", data=redeem).json()
    assert tokens["token_type"] == "Bearer"
    for field in (
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "refresh_token",
        "id_token",
        "client_info",
    ):
        assert tokens[field], field
    info = json.loads(base64.urlsafe_b64decode(tokens["client_info"] + "=="))
    assert info["utid"] == tenant
    assert_aad_error(http.post(f"{base}/token", data=redeem), "invalid_grant", 70000)


def test_access_tokens_verify_against_the_published_keys(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    jwks = http.get(f"{sim_proc.authority_host}/{tenant}/discovery/v2.0/keys").json()
    key = jwt.PyJWKSet.from_dict(jwks).keys[0]
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["iss"] == f"https://sts.windows.net/{tenant}/"
    assert (claims["tid"], claims["appid"], claims["scp"]) == (
        tenant,
        CLIENT_ID,
        "Group.ReadWrite.All",
    )
    assert claims["upn"] == f"admin@{tenant[:8]}.onmicrosoft.test"
    assert claims["exp"] - claims["iat"] == 3600


def test_msal_device_code_sign_in_polls_until_approved(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    app, result = sign_in(sim_proc, http, tenant)
    assert result["id_token_claims"]["tid"] == tenant
    [account] = app.get_accounts()
    assert account["username"] == f"admin@{tenant[:8]}.onmicrosoft.test"
    calls = stats(sim_proc, http)["token_calls"][tenant]
    assert calls["device_code"] >= 2  # at least one authorization_pending, then the tokens
    assert calls["refresh_token"] == calls["invalid_grant"] == 0


def test_msal_signs_in_through_organizations(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    _, result = sign_in(sim_proc, http, "organizations")
    assert result["id_token_claims"]["tid"] == HOME_TENANT


def test_refresh_tokens_rotate(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    app, first = sign_in(sim_proc, http, tenant)
    [account] = app.get_accounts()
    second = app.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)
    assert second and "access_token" in second, second
    assert second["refresh_token"] != first["refresh_token"]

    stale = refresh(sim_proc, http, tenant, first["refresh_token"])
    assert "rotated out" in assert_aad_error(stale, "invalid_grant", 70000)["error_description"]
    third = refresh(sim_proc, http, tenant, second["refresh_token"])
    assert third.status_code == 200 and third.json()["refresh_token"] != second["refresh_token"]

    calls = stats(sim_proc, http)["token_calls"][tenant]
    assert (calls["refresh_token"], calls["invalid_grant"]) == (3, 1)


def test_a_refresh_token_is_bound_to_its_client(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    _, result = sign_in(sim_proc, http, tenant)
    other = refresh(sim_proc, http, tenant, result["refresh_token"], client_id=str(uuid.uuid4()))
    assert (
        "different client_id"
        in assert_aad_error(other, "invalid_grant", 70000)["error_description"]
    )
    assert refresh(sim_proc, http, new_tenant(), result["refresh_token"]).status_code == 400
    assert refresh(sim_proc, http, tenant, result["refresh_token"]).status_code == 200


def test_a_confidential_client_may_send_a_secret(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    _, result = sign_in(sim_proc, http, tenant)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": result["refresh_token"],
        "scope": "Group.ReadWrite.All offline_access",
    }
    answer = http.post(token_endpoint(sim_proc, tenant), data=form, auth=(CLIENT_ID, "s3cret"))
    assert answer.status_code == 200, answer.text
    form |= {
        "refresh_token": answer.json()["refresh_token"],
        "client_id": CLIENT_ID,
        "client_secret": "s3cret",
    }
    assert http.post(token_endpoint(sim_proc, tenant), data=form).status_code == 200
    calls = stats(sim_proc, http)["token_calls"][tenant]
    assert calls["refresh_token"] == 2 and calls["with_client_secret"] == 2  # Basic, then form


def test_other_grants_and_missing_parameters(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    url = token_endpoint(sim_proc, new_tenant())
    credentials = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": "x",
        "scope": "https://graph.microsoft.com/.default",
    }
    assert_aad_error(http.post(url, data=credentials), "unsupported_grant_type", 70003)
    assert_aad_error(http.post(url, data={"client_id": CLIENT_ID}), "invalid_request", 900144)


def test_revoking_a_tenant(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    tenant = new_tenant()
    _, result = sign_in(sim_proc, http, tenant)
    token = result["access_token"]
    assert post_thread(sim_proc, http, token).status_code == 204

    answer = http.post(f"{sim_proc.admin_url}/tenants/{tenant}/revoke")
    assert answer.json() == {"tenant": tenant, "refresh_tokens_revoked": 1}

    error = assert_graph_error(
        post_thread(sim_proc, http, token), 401, "InvalidAuthenticationToken"
    )
    assert "TokenIssuedBeforeRevocationTimestamp" in error["message"]
    stale = refresh(sim_proc, http, tenant, result["refresh_token"])
    assert "revoked" in assert_aad_error(stale, "invalid_grant", 70000)["error_description"]
    assert stats(sim_proc, http)["token_calls"][tenant]["invalid_grant"] == 1

    _, again = sign_in(sim_proc, http, tenant)  # signing in again heals the tenant
    assert post_thread(sim_proc, http, again["access_token"]).status_code == 204


def test_revoking_only_the_access_tokens_leaves_the_sign_in_alive(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    _, result = sign_in(sim_proc, http, tenant)
    token = result["access_token"]
    url = f"{sim_proc.admin_url}/tenants/{tenant}/revoke"
    assert http.post(url, params={"access_tokens_only": "maybe"}).status_code == 400
    assert post_thread(sim_proc, http, token).status_code == 204

    answer = http.post(url, params={"access_tokens_only": "true"})
    assert answer.json() == {
        "tenant": tenant,
        "refresh_tokens_revoked": 0,
        "access_tokens_only": True,
    }
    assert_graph_error(post_thread(sim_proc, http, token), 401, "InvalidAuthenticationToken")
    renewed = refresh(sim_proc, http, tenant, result["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert post_thread(sim_proc, http, renewed.json()["access_token"]).status_code == 204
    assert stats(sim_proc, http)["token_calls"][tenant]["invalid_grant"] == 0


# --- Graph ------------------------------------------------------------------------------------


def test_a_chat_thread_is_created_and_recorded_byte_for_byte(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    group = str(uuid.uuid4())
    client_request_id = str(uuid.uuid4())
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    response = post_thread(
        sim_proc, http, token, group=group, client_request_id=client_request_id, retry_attempt="2"
    )
    assert response.status_code == 204
    assert response.content == b""
    assert uuid.UUID(response.headers["request-id"])
    assert response.headers["client-request-id"] == client_request_id
    assert response.headers["date"]

    [post] = posts(sim_proc, http)["posts"]
    assert post["raw_body"].encode() == SEED_BODY
    assert post["seq"] == 1
    assert (post["tenant"], post["group"], post["channel"]) == (
        tenant,
        group,
        "19:abc@thread.tacv2",
    )
    assert (post["content_type"], post["content"]) == (1, "<h1>Hello world</h1>")
    assert post["client_request_id"] == client_request_id
    assert post["retry_attempt"] == "2"
    assert post["request_id"] == response.headers["request-id"]
    assert post["duplicate_of"] is None


def test_without_client_request_id_the_request_id_is_echoed(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    response = post_thread(sim_proc, http, signed_in[1])
    assert response.headers["client-request-id"] == response.headers["request-id"]


def test_the_channel_id_is_decoded_once(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    token = signed_in[1]
    assert (
        post_thread(sim_proc, http, token, channel="19%3Aq%2Fr%40thread.tacv2").status_code == 204
    )
    assert (
        post_thread(sim_proc, http, token, channel="19%253Aabc%2540thread.tacv2").status_code == 204
    )
    channels = [post["channel"] for post in posts(sim_proc, http)["posts"]]
    assert channels == ["19:q/r@thread.tacv2", "19%3Aabc%40thread.tacv2"]


@pytest.mark.parametrize(
    ("body", "content_type", "names"),
    [
        (
            b'{"rootMessage":{"body":{"contentType":"html","content":"x"}}}',
            "application/json",
            "'html'",
        ),
        (
            b'{"rootMessage":{"body":{"contentType":true,"content":"x"}}}',
            "application/json",
            "true",
        ),
        (SEED_BODY[:-1] + b',"extra":1}', "application/json", "'extra'"),
        (b'{"rootMessage":', "application/json", "JSON"),
        (SEED_BODY, "text/plain", "Content-Type"),
    ],
)
def test_invalid_bodies_are_400(
    sim_proc: RunningSimulator,
    http: httpx.Client,
    signed_in: tuple[str, str],
    body: bytes,
    content_type: str,
    names: str,
) -> None:
    before = stats(sim_proc, http)
    response = post_thread(sim_proc, http, signed_in[1], body=body, content_type=content_type)
    assert names in assert_graph_error(response, 400, "BadRequest")["message"]
    after = stats(sim_proc, http)
    assert after["accepted"] == before["accepted"]
    assert after["rejected"]["400"] == before["rejected"].get("400", 0) + 1


@pytest.mark.parametrize("authorization", [None, "Bearer garbage", "Basic Zm9vOmJhcg=="])
def test_missing_or_invalid_tokens_are_401(
    sim_proc: RunningSimulator, http: httpx.Client, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json", "client-request-id": "mine"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = http.post(
        chatthreads_url(sim_proc, str(uuid.uuid4())), content=SEED_BODY, headers=headers
    )
    assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert response.headers["client-request-id"] == "mine"
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_other_graph_urls(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    auth = {"Authorization": f"Bearer {signed_in[1]}"}
    url = chatthreads_url(sim_proc, str(uuid.uuid4()))
    assert_graph_error(http.get(url, headers=auth), 405, "Request_BadRequest")
    not_a_group = post_thread(sim_proc, http, signed_in[1], group="not-a-guid")
    assert "not-a-guid" in assert_graph_error(not_a_group, 400, "BadRequest")["message"]
    messages = http.post(url.replace("chatthreads", "messages"), headers=auth, json={})
    assert_graph_error(messages, 400, "BadRequest")


# --- admin API --------------------------------------------------------------------------------


def test_duplicates_stats_and_reset(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    group = str(uuid.uuid4())
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    other = SEED_BODY.replace(b"Hello", b"Goodbye")
    for body in (SEED_BODY, other, SEED_BODY):
        assert post_thread(sim_proc, http, token, body=body, group=group).status_code == 204
    assert (
        post_thread(sim_proc, http, token, body=SEED_BODY, channel="19%3Aother").status_code == 204
    )
    assert post_thread(sim_proc, http, "garbage").status_code == 401

    current = stats(sim_proc, http)
    assert (current["accepted"], current["unique"], current["duplicates"]) == (4, 3, 1)
    assert current["rejected"] == {"401": 1}
    assert [p["duplicate_of"] for p in posts(sim_proc, http)["posts"]] == [None, None, 1, None]
    assert tenant in current["token_calls"] or current["token_calls"] == {}

    assert http.post(f"{sim_proc.admin_url}/reset").json() == {"ok": True}
    assert stats(sim_proc, http) == {
        "accepted": 0,
        "unique": 0,
        "duplicates": 0,
        "rejected": {},
        "token_calls": {},
        "faults": {"503": 0, "503_bare": 0, "504": 0, "accepted_then_delayed": 0, "dropped": 0},
    }
    assert posts(sim_proc, http)["posts"] == []
    assert post_thread(sim_proc, http, token).status_code == 204  # sign-ins survive a reset


def test_posts_are_paged(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    for n in range(5):
        body = SEED_BODY.replace(b"world", f"world {n}".encode())
        assert post_thread(sim_proc, http, signed_in[1], body=body).status_code == 204
    page = posts(sim_proc, http, offset=1, limit=2)
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert [post["seq"] for post in page["posts"]] == [2, 3]
    assert http.get(f"{sim_proc.admin_url}/posts", params={"limit": "-1"}).status_code == 400
    assert http.post(f"{sim_proc.admin_url}/tenants/nope/revoke").status_code == 400


# --- the v1.0 channel-messages endpoint -------------------------------------------------------

V1_BODY = b'{"body":{"contentType":"html","content":"<h1>Hello world</h1>"}}'


def post_message(
    sim: RunningSimulator, http: httpx.Client, token: str, team: str, body: bytes = V1_BODY
) -> httpx.Response:
    url = f"{sim.graph_url}/v1.0/teams/{team}/channels/{CHANNEL}/messages"
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return http.post(url, content=body, headers=headers)


def test_a_channel_message_is_created_and_recorded(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    team = str(uuid.uuid4())
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    response = post_message(sim_proc, http, token, team)
    assert response.status_code == 201, response.text
    assert uuid.UUID(response.headers["request-id"])
    message = response.json()
    assert message["id"].isdigit() and abs(int(message["id"]) / 1000 - time.time()) < 60
    assert message["createdDateTime"].endswith("Z")
    assert message["body"] == {"contentType": "html", "content": "<h1>Hello world</h1>"}
    assert message["channelIdentity"] == {"teamId": team, "channelId": "19:abc@thread.tacv2"}
    assert message["from"]["user"]["tenantId"] == tenant

    [post] = posts(sim_proc, http)["posts"]
    assert (post["endpoint"], post["message_id"]) == ("channel-messages", message["id"])
    assert (post["group"], post["content_type"], post["raw_body"]) == (team, 1, V1_BODY.decode())
    assert post["request_id"] == response.headers["request-id"]

    second = post_message(sim_proc, http, token, team).json()
    assert int(second["id"]) > int(message["id"])


def test_a_message_is_a_duplicate_whichever_endpoint_posted_it(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    team = str(uuid.uuid4())
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()
    assert post_thread(sim_proc, http, token, group=team).status_code == 204
    assert post_message(sim_proc, http, token, team).status_code == 201
    text = V1_BODY.replace(b'"html"', b'"text"')
    assert post_message(sim_proc, http, token, team, body=text).status_code == 201
    assert [p["duplicate_of"] for p in posts(sim_proc, http)["posts"]] == [None, 1, None]
    assert stats(sim_proc, http)["duplicates"] == 1


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"body":{"contentType":1,"content":"x"}}', "body.contentType"),
        (b'{"body":{"contentType":"Html","content":"x"}}', '"Html"'),
        (b'{"body":{"contentType":"text","content":""}}', "must not be empty"),
        (b'{"body":{"contentType":"text","content":"x"},"importance":"loud"}', "importance"),
        (SEED_BODY, "'rootMessage'"),
    ],
)
def test_invalid_channel_messages_are_400(
    sim_proc: RunningSimulator,
    http: httpx.Client,
    signed_in: tuple[str, str],
    body: bytes,
    names: str,
) -> None:
    response = post_message(sim_proc, http, signed_in[1], str(uuid.uuid4()), body=body)
    assert names in assert_graph_error(response, 400, "BadRequest")["message"]


def test_channel_messages_need_a_token(sim_proc: RunningSimulator, http: httpx.Client) -> None:
    response = post_message(sim_proc, http, "garbage", str(uuid.uuid4()))
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


# --- body size --------------------------------------------------------------------------------


def _body_of_size(size: int) -> bytes:
    body = SEED_BODY.replace(b"Hello world", b"x" * (size - len(SEED_BODY) + len(b"Hello world")))
    assert len(body) == size
    return body


def test_bodies_over_one_mib_are_413(
    sim_proc: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    assert post_thread(sim_proc, http, token, body=_body_of_size(1024 * 1024)).status_code == 204
    too_big = post_thread(sim_proc, http, token, body=_body_of_size(1024 * 1024 + 1))
    assert "1 MiB" in assert_graph_error(too_big, 413, "RequestEntityTooLarge")["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known by reading
        for _ in range(64):
            yield b"x" * 65536

    url = chatthreads_url(sim_proc, str(uuid.uuid4()))
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    chunked = http.post(url, content=chunks(), headers=headers)
    assert_graph_error(chunked, 413, "RequestEntityTooLarge")
    assert post_thread(sim_proc, http, token).status_code == 204  # the connection still works


# --- issued tokens ----------------------------------------------------------------------------


def test_every_issued_token_is_listed_for_leak_tests(
    sim_proc: RunningSimulator, http: httpx.Client
) -> None:
    tenant = new_tenant()
    app, first = sign_in(sim_proc, http, tenant)
    [account] = app.get_accounts()
    second = app.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    url = f"{sim_proc.admin_url}/tokens"
    http.post(f"{sim_proc.admin_url}/reset").raise_for_status()  # does not forget them

    mine = http.get(url, params={"tenant": tenant.upper()}).json()
    assert mine == {
        "access_tokens": [first["access_token"], second["access_token"]],
        "refresh_tokens": [first["refresh_token"], second["refresh_token"]],
    }
    everyone = http.get(url).json()
    assert set(mine["access_tokens"]) < set(everyone["access_tokens"])
    assert set(mine["refresh_tokens"]) < set(everyone["refresh_tokens"])
    assert http.get(url, params={"tenant": "nope"}).status_code == 400


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: only the route is looked up
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_the_token_list_is_for_loopback_clients_only(tmp_path: Path) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call from")
    with (
        simulator.process.start(tmp_path, host=address) as sim,
        httpx.Client(verify=sim.ssl_context()) as client,
    ):
        assert sim.admin_url.startswith(f"https://{address}:")
        refused = client.get(f"{sim.admin_url}/tokens")
        assert refused.status_code == 403
        assert "loopback" in refused.json()["error"]
        assert client.get(f"{sim.admin_url}/stats").status_code == 200
