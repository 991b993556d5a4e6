"""Throttling as clients meet it: a real simulator subprocess, real MSAL sign-in, real httpx.

One simulator serves the module; each test switches the limits it needs on through the admin
API (``POST /_sim/config``) and starts from a reset, which also tests runtime configuration.
Waiting out a Retry-After moves the simulator's test clock (``--test-clock``), no sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import simulator.process
from simulator.knobs import Knobs
from simulator.process import RunningSimulator
from tests.integration.test_simulator import (
    CHANNEL,
    CLIENT_ID,
    SEED_BODY,
    assert_graph_error,
    move_clock,
    new_tenant,
    sign_in,
)

CHANNEL_ID = "19:abc@thread.tacv2"
V1_BODY = b'{"body":{"contentType":"html","content":"<h1>Hello world</h1>"}}'


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(
        tmp_path_factory.mktemp("sim"), device_approve_delay=0, test_clock=True
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def signed_in(sim: RunningSimulator, http: httpx.Client) -> tuple[str, str]:
    tenant = new_tenant()
    return tenant, str(sign_in(sim, http, tenant)[1]["access_token"])


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator, http: httpx.Client) -> None:
    move_clock(sim, http, offset=0)  # a test before may have moved it: back to real time
    configure(sim, http, **Knobs().to_json())
    http.post(f"{sim.admin_url}/reset").raise_for_status()


def configure(sim: RunningSimulator, http: httpx.Client, **changes: object) -> dict[str, Any]:
    return dict(http.post(f"{sim.admin_url}/config", json=changes).raise_for_status().json())


def throttle(sim: RunningSimulator, http: httpx.Client) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}/throttle").raise_for_status().json())


def send(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    team: str,
    channel: str = CHANNEL,
    v1: bool = False,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    if v1:
        url = f"{sim.graph_url}/v1.0/teams/{team}/channels/{channel}/messages"
        return http.post(url, content=V1_BODY, headers=headers)
    url = f"{sim.graph_url}/beta/groups/{team}/channels/{channel}/chatthreads"
    return http.post(url, content=SEED_BODY, headers=headers)


def assert_throttled(response: httpx.Response) -> int:
    error = assert_graph_error(response, 429, "TooManyRequests")
    assert "limit of" in error["message"]
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def test_the_flags_switch_throttling_on_from_the_start(tmp_path: Path) -> None:
    flags = ["--throttle-defaults", "--team-rps", "2", "--fault-seed", "7"]
    with (
        simulator.process.start(tmp_path, device_approve_delay=0, extra_args=flags) as sim,
        httpx.Client(verify=sim.ssl_context(), timeout=10) as http,
    ):
        config = http.get(f"{sim.admin_url}/config").json()
        names = ("app_rps", "tenant_rps", "team_rps", "channel_rps")
        assert {name: config[name] for name in names} == {
            "app_rps": 500,
            "tenant_rps": 50,
            "team_rps": 2,
            "channel_rps": 1,
        }
        assert (config["channel_daily"], config["fault_seed"]) == (3000, 7)
        token = sign_in(sim, http, new_tenant())[1]["access_token"]
        team = str(uuid.uuid4())
        # The documented 1/s per channel binds first, then the team's 2/s across its channels.
        assert send(sim, http, token, team, channel="19%3Aa").status_code == 204
        same_channel = send(sim, http, token, team, channel="19%3Aa")
        assert assert_throttled(same_channel) == 1
        assert "in channel" in same_channel.json()["error"]["message"]
        assert send(sim, http, token, team, channel="19%3Ab").status_code == 204
        third_channel = send(sim, http, token, team, channel="19%3Ac")
        assert assert_throttled(third_channel) == 1
        assert f"on team {team}" in third_channel.json()["error"]["message"]


def test_the_config_api(sim: RunningSimulator, http: httpx.Client) -> None:
    url = f"{sim.admin_url}/config"
    assert http.get(url).json() == Knobs().to_json()
    changed = configure(sim, http, team_rps=3, fault_504=0.5)
    assert (changed["team_rps"], changed["fault_504"], changed["app_rps"]) == (3, 0.5, 0)
    assert http.get(url).json() == changed
    refused = http.post(url, json={"team_rps": 1, "fault_504": 2})
    assert refused.status_code == 400
    assert "'fault_504' must be a fraction" in refused.json()["error"]
    assert http.get(url).json() == changed  # all or nothing
    assert http.post(url, json=[1]).status_code == 400
    assert http.post(url, content=b"{").status_code == 400
    assert configure(sim, http, throttle_defaults=True)["tenant_rps"] == 50


def test_a_team_over_its_limit_gets_429_and_other_teams_do_not(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    configure(sim, http, team_rps=2, app_rps=100, tenant_rps=100)
    team, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert [send(sim, http, token, team).status_code for _ in range(2)] == [204, 204]
    retry_after = assert_throttled(send(sim, http, token, team))
    assert send(sim, http, token, other).status_code == 204
    move_clock(sim, http, advance=retry_after)
    assert send(sim, http, token, team).status_code == 204  # the window has moved on

    report = throttle(sim, http)
    assert report["limits"] == {
        "app_rps": 100,
        "tenant_rps": 100,
        "team_rps": 2,
        "channel_rps": 0,
        "channel_daily": 0,
    }
    assert report["scopes"][f"team:{team}"] == {
        "limit": 2,
        "max_window": 2,
        "throttled": 1,
        "retry_after_violations": 0,
    }
    assert report["scopes"][f"team:{other}"]["max_window"] == 1
    assert report["scopes"][f"tenant:{tenant}"]["max_window"] == 3
    assert report["scopes"][f"app:{CLIENT_ID}"]["limit"] == 100
    assert report["totals"] == {
        "throttled": 1,
        "retry_after_violations": 0,
        "max_window_over_limit": 0,
    }
    stats = http.get(f"{sim.admin_url}/stats").json()
    assert (stats["accepted"], stats["rejected"]) == (4, {"429": 1})


def test_sending_during_a_retry_after_is_a_violation(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    configure(sim, http, team_rps=1)
    team = str(uuid.uuid4())
    assert send(sim, http, token, team).status_code == 204
    assert_throttled(send(sim, http, token, team))
    retry_after = assert_throttled(send(sim, http, token, team))  # did not wait: a violation
    move_clock(sim, http, advance=retry_after)
    assert send(sim, http, token, team).status_code == 204  # waited: no violation
    assert throttle(sim, http)["scopes"][f"team:{team}"] == {
        "limit": 1,
        "max_window": 1,
        "throttled": 2,
        "retry_after_violations": 1,
    }
    assert throttle(sim, http)["totals"]["retry_after_violations"] == 1

    http.post(f"{sim.admin_url}/reset").raise_for_status()
    assert throttle(sim, http)["scopes"] == {}


def test_a_channel_over_its_rate_gets_429_and_is_measured(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    tenant, token = signed_in
    configure(sim, http, channel_rps=1)
    team = str(uuid.uuid4())
    assert send(sim, http, token, team).status_code == 204
    retry_after = assert_throttled(send(sim, http, token, team, v1=True))  # either endpoint
    assert retry_after == 1
    assert send(sim, http, token, team, channel="19%3Aother").status_code == 204
    assert send(sim, http, token, str(uuid.uuid4())).status_code == 204  # same id, other team
    move_clock(sim, http, advance=retry_after)
    assert send(sim, http, token, team).status_code == 204  # waited: no violation

    scopes = throttle(sim, http)["scopes"]
    assert scopes[f"channel_rps:{tenant}/{team}/{CHANNEL_ID}"] == {
        "limit": 1,
        "max_window": 1,
        "throttled": 1,
        "retry_after_violations": 0,
    }
    assert scopes[f"channel_rps:{tenant}/{team}/19:other"]["max_window"] == 1
    assert len(scopes) == 3
    stats = http.get(f"{sim.admin_url}/stats").json()
    assert (stats["accepted"], stats["rejected"]) == (4, {"429": 1})


def test_the_daily_channel_quota_retries_after_utc_midnight(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    configure(sim, http, channel_daily=2)
    team = str(uuid.uuid4())
    assert [send(sim, http, token, team).status_code for _ in range(2)] == [204, 204]
    retry_after = assert_throttled(send(sim, http, token, team))
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert abs(retry_after - (midnight - now).total_seconds()) <= 2
    assert send(sim, http, token, team, channel="19%3Aother").status_code == 204
    scopes = throttle(sim, http)["scopes"]
    assert scopes[f"channel:{team}/{CHANNEL_ID}"] == {
        "limit": 2,
        "today": 2,
        "throttled": 1,
        "retry_after_violations": 0,
    }
    assert scopes[f"channel:{team}/19:other"]["today"] == 1


def test_both_message_endpoints_count_against_the_same_team(
    sim: RunningSimulator, http: httpx.Client, signed_in: tuple[str, str]
) -> None:
    token = signed_in[1]
    configure(sim, http, team_rps=2)
    team = str(uuid.uuid4())
    assert send(sim, http, token, team).status_code == 204
    assert send(sim, http, token, team, v1=True).status_code == 201
    assert_throttled(send(sim, http, token, team, v1=True))
    assert_throttled(send(sim, http, token, team))
