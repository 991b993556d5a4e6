"""Fault injection as clients meet it: each fault observable by a real httpx client.

One simulator serves the module; each test switches its fault on through ``POST /_sim/config``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import simulator.process
from simulator.knobs import Knobs
from simulator.process import RunningSimulator
from tests.integration.test_simulator import SEED_BODY, assert_graph_error, new_tenant, sign_in
from tests.integration.test_simulator_limits import configure, send, throttle


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    running = simulator.process.start(tmp_path_factory.mktemp("sim"), device_approve_delay=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(verify=sim.ssl_context(), timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def token(sim: RunningSimulator, http: httpx.Client) -> str:
    return str(sign_in(sim, http, new_tenant())[1]["access_token"])


@pytest.fixture(autouse=True)
def fresh(sim: RunningSimulator, http: httpx.Client) -> None:
    configure(sim, http, **Knobs().to_json())
    http.post(f"{sim.admin_url}/reset").raise_for_status()


def stats(sim: RunningSimulator, http: httpx.Client) -> dict[str, Any]:
    return dict(http.get(f"{sim.admin_url}/stats").raise_for_status().json())


def posts(sim: RunningSimulator, http: httpx.Client) -> list[dict[str, Any]]:
    return list(http.get(f"{sim.admin_url}/posts").raise_for_status().json()["posts"])


@pytest.mark.parametrize(
    ("knob", "status", "code", "retry_after", "counter"),
    [
        ("fault_503", 503, "ServiceUnavailable", "3", "503"),
        ("fault_503_bare", 503, "ServiceUnavailable", None, "503_bare"),
        ("fault_504", 504, "GatewayTimeout", None, "504"),
    ],
)
def test_error_faults(
    sim: RunningSimulator,
    http: httpx.Client,
    token: str,
    knob: str,
    status: int,
    code: str,
    retry_after: str | None,
    counter: str,
) -> None:
    configure(sim, http, **{knob: 1, "fault_retry_after": 3})
    for _ in range(2):
        response = send(sim, http, token, str(uuid.uuid4()))
        assert_graph_error(response, status, code)
        assert response.headers.get("retry-after") == retry_after
    current = stats(sim, http)
    assert current["faults"][counter] == 2
    assert (current["accepted"], current["rejected"]) == (0, {str(status): 2})
    assert posts(sim, http) == []


def test_faults_come_after_authentication_and_validation(
    sim: RunningSimulator, http: httpx.Client, token: str
) -> None:
    configure(sim, http, fault_503=1)
    team = str(uuid.uuid4())
    url = f"{sim.graph_url}/beta/groups/{team}/channels/19%3Aa/chatthreads"
    bad_body = http.post(
        url,
        content=b'{"rootMessage":{}}',
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert_graph_error(bad_body, 400, "BadRequest")
    no_token = http.post(url, content=SEED_BODY, headers={"content-type": "application/json"})
    assert_graph_error(no_token, 401, "InvalidAuthenticationToken")
    assert stats(sim, http)["faults"]["503"] == 0


def test_a_faulted_request_counts_in_no_throttle_window(
    sim: RunningSimulator, http: httpx.Client, token: str
) -> None:
    configure(sim, http, fault_504=1, team_rps=1)
    team = str(uuid.uuid4())
    assert [send(sim, http, token, team).status_code for _ in range(3)] == [504] * 3
    configure(sim, http, fault_504=0)
    assert send(sim, http, token, team).status_code == 204
    scope = throttle(sim, http)["scopes"][f"team:{team}"]
    assert (scope["max_window"], scope["throttled"]) == (1, 0)


def test_latency(sim: RunningSimulator, http: httpx.Client, token: str) -> None:
    configure(sim, http, latency_ms=300, latency_jitter_ms=100)
    started = time.monotonic()
    assert send(sim, http, token, str(uuid.uuid4())).status_code == 204
    assert 0.3 <= time.monotonic() - started < 2.0
    configure(sim, http, latency_ms=0, latency_jitter_ms=0)
    started = time.monotonic()
    assert send(sim, http, token, str(uuid.uuid4())).status_code == 204
    assert time.monotonic() - started < 0.3


def test_an_accepted_post_whose_answer_never_comes_in_time(
    sim: RunningSimulator, token: str, http: httpx.Client
) -> None:
    configure(sim, http, fault_accept_delay=1, fault_accept_delay_seconds=2)
    team = str(uuid.uuid4())
    with (
        httpx.Client(verify=sim.ssl_context(), timeout=1) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        send(sim, impatient, token, team)
    [post] = posts(sim, http)  # the client cannot know, but it was posted
    assert (post["group"], post["delayed_answer"]) == (team, True)
    current = stats(sim, http)
    assert (current["accepted"], current["faults"]["accepted_then_delayed"]) == (1, 1)

    with httpx.Client(verify=sim.ssl_context(), timeout=5) as patient:
        started = time.monotonic()
        assert send(sim, patient, token, team).status_code == 204
        assert time.monotonic() - started >= 2


def test_a_dropped_connection_posts_nothing(
    sim: RunningSimulator, http: httpx.Client, token: str
) -> None:
    configure(sim, http, fault_drop=1)
    with httpx.Client(verify=sim.ssl_context(), timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            send(sim, client, token, str(uuid.uuid4()))
        configure(sim, http, fault_drop=0)
        assert send(sim, client, token, str(uuid.uuid4())).status_code == 204  # reconnects
    current = stats(sim, http)
    assert (current["accepted"], current["faults"]["dropped"]) == (1, 1)
    assert len(posts(sim, http)) == 1


def test_seeded_faults_repeat_after_a_reset(
    sim: RunningSimulator, http: httpx.Client, token: str
) -> None:
    configure(sim, http, fault_503=0.5, fault_seed=11)

    def run() -> list[int]:
        return [send(sim, http, token, str(uuid.uuid4())).status_code for _ in range(20)]

    first = run()
    assert set(first) == {204, 503}
    http.post(f"{sim.admin_url}/reset").raise_for_status()
    assert run() == first
    assert stats(sim, http)["faults"]["503"] == first.count(503)
