"""Audiences end to end: specs resolved through the simulator's Graph reads over HTTPS with the
tenants' real MSAL sign-ins (THREADCAST_AUDIENCES=true asks for the read permissions), into
concrete deliveries on the real ledger and Redis; paging, a 429's Retry-After, a missing
permission, bad specs and --dry-run writing nothing, saved audiences, the HTTP API.

The simulator's directory gives each tenant 10 teams (Engineering, Sales, ...) of 3 channels
(General, Announcements, Projects) unless a test changes it; every test puts its settings back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.cli import main
from producer.client import Producer
from producer.signin import sign_in
from simulator.process import RunningSimulator
from simulator.v1knobs import V1Knobs
from tests.integration.apiserver import start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import footprint, wait_for
from threadcast.errors import AudienceError
from threadcast.ledger import DeliveryQueries

# Resolving audiences reads Graph, not the ledger: one backend (the saved-audience book's SQL is
# plain; keeping the suite under 10 minutes).
pytestmark = pytest.mark.backends("sqlite")

STACK_ENV = {"THREADCAST_AUDIENCES": "true"}
API_KEY = "aud-" + "k" * 28


@pytest.fixture
def v1(sim: RunningSimulator) -> Iterator[Any]:
    """Set the simulator's v1.0 knobs (page size, read limits); the defaults come back after."""
    admin = httpx.Client(base_url=sim.admin_url, verify=sim.ssl_context(), timeout=10)

    def configure(**knobs: object) -> dict[str, Any]:
        return dict(admin.post("/config/v1", json=knobs).raise_for_status().json())

    try:
        yield configure
    finally:
        configure(**V1Knobs().to_json())
        admin.close()


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return stack


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def general(tenant: str) -> str:
    return f"tenant={tenant};channel=General"


def snapshot(stack: Stack) -> tuple[object, ...]:
    return footprint(stack.ledger, stack.redis)


# --- each kind ---------------------------------------------------------------------------------


def test_a_channel_named_in_every_joined_team(stack: Stack) -> None:
    tenant = stack.tenants[0]
    with Producer(stack.settings) as producer:
        found = producer.resolve([general(tenant)])
    assert len(found.targets) == 10 and len({t.group for t in found.targets}) == 10
    assert {t.tenant for t in found.targets} == {tenant}
    names = [found.names[(t.tenant, t.group, t.channel)] for t in found.targets]
    assert {channel for _, channel in names} == {"General"}
    assert [team for team, _ in names][:3] == ["Engineering", "Sales", "Marketing"]
    assert all(t.channel.endswith("@thread.tacv2") for t in found.targets)
    assert found.per_tenant() == {tenant: 10} and found.waits == []


def test_every_channel_of_a_team_and_a_named_one(stack: Stack) -> None:
    tenant = stack.tenants[0]
    with Producer(stack.settings) as producer:
        team = producer.resolve([general(tenant)]).targets[1].group
        whole = producer.resolve([f"tenant={tenant};team={team}"])
        one = producer.resolve([f"tenant={tenant};team={team};channel=Projects"])
        both = producer.resolve([f"tenant={tenant};team={team}", general(tenant)])
    names = [whole.names[(t.tenant, t.group, t.channel)][1] for t in whole.targets]
    assert names == ["General", "Announcements", "Projects"]
    assert {t.group for t in whole.targets} == {team}
    assert one.targets == [whole.targets[2]]
    # Overlapping audiences: each channel once (team's General is in both).
    assert [len(r.targets) for r in both.parts] == [3, 10] and len(both.targets) == 12


def test_a_send_to_audiences_writes_concrete_deliveries_that_go_out(stack: Stack) -> None:
    first, second = stack.tenants
    with Producer(stack.settings) as producer:
        team = producer.resolve([general(second)]).targets[0].group
        result = producer.send(
            "<p>to every General</p>",
            audiences=[general(first), f"tenant={second};team={team}"],
        )
        expected = producer.resolve([general(first), f"tenant={second};team={team}"]).targets
    assert result.deliveries == 13 and result.created
    rows = DeliveryQueries(stack.ledger.engine).page(result.broadcast_id, limit=100).rows
    assert [(r.tenant, r.group, r.channel) for r in rows] == [
        (t.tenant, t.group, t.channel) for t in expected
    ]
    wait_for(lambda: stack.ledger.broadcasts.counts(result.broadcast_id)["sent"] == 13)


# --- paging, throttling, refusals ---------------------------------------------------------------


def test_pages_are_followed(stack: Stack, v1: Any) -> None:
    tenant = stack.tenants[0]
    with Producer(stack.settings) as producer:
        whole = producer.resolve([general(tenant)])
        team = whole.targets[0].group
        everything = producer.resolve([f"tenant={tenant};team={team}"])
        v1(page_size=2, channels_per_team=5)  # joinedTeams: 5 pages; a team's channels: 3
        paged = producer.resolve([general(tenant)])
        channels = producer.resolve([f"tenant={tenant};team={team}"])
    assert paged.targets == whole.targets
    assert channels.targets[:3] == everything.targets and len(channels.targets) == 5
    names = [channels.names[(t.tenant, t.group, t.channel)][1] for t in channels.targets]
    assert names == ["General", "Announcements", "Projects", "Random", "Help"]


def test_a_429_is_waited_out_as_retry_after_says(
    stack: Stack, sim: RunningSimulator, v1: Any
) -> None:
    tenant = stack.tenants[0]
    with Producer(stack.settings) as producer:
        whole = producer.resolve([general(tenant)])
        # joinedTeams at 1 request per second, read in 4 pages one after the other.
        v1(page_size=3, joined_teams_tenant_rps=1)
        throttled = producer.resolve([general(tenant)])
    assert throttled.targets == whole.targets
    assert throttled.waits and all(wait == 1 for wait in throttled.waits)
    with httpx.Client(verify=sim.ssl_context()) as admin:
        scopes = admin.get(f"{sim.admin_url}/throttle").raise_for_status().json()["scopes"]
    scope = scopes[f"joined_teams_tenant:{tenant}"]
    assert scope["throttled"] == len(throttled.waits)
    assert scope.get("retry_after_violations", 0) == 0  # no request before its wait ran out


def test_a_sign_in_without_the_read_permissions_is_told_to_log_in_again(
    cli_env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = str(uuid.uuid4())
    plain = cli_env.settings.model_copy(update={"audiences": False})
    sign_in(plain, tenant, lambda _text: None)  # asks for the send permission only
    before = snapshot(cli_env)
    assert run(["send", "--audience", general(tenant), "--text", "x"]) == 2
    err = capsys.readouterr().err
    assert "--audience[0]:" in err and "Team.ReadBasic.All" in err and "403" in err
    assert f"THREADCAST_AUDIENCES=true and run threadcast login --tenant {tenant}" in err
    assert snapshot(cli_env) == before


def test_an_unknown_team_and_a_tenant_never_signed_in(stack: Stack) -> None:
    tenant, team, stranger = stack.tenants[0], str(uuid.uuid4()), str(uuid.uuid4())
    with Producer(stack.settings) as producer:
        with pytest.raises(AudienceError) as unknown:
            producer.resolve([general(tenant), f"tenant={tenant};team={team}"])
        with pytest.raises(AudienceError) as unsigned:
            producer.resolve([general(stranger)])
    assert unknown.value.field == "audiences[1]"
    assert f"tenant {tenant} has no team {team}" in str(unknown.value)
    assert "404" in str(unknown.value) and f"No team found with Group Id {team}" in str(
        unknown.value
    )
    assert f"threadcast login --tenant {stranger}" in str(unsigned.value)


# --- the command line ---------------------------------------------------------------------------


BAD_SPECS = [
    ("tenant=contoso;channel=General", "--audience[0]: tenant must be a GUID"),
    ("tenant={t};teem=x", "--audience[0]: unknown key 'teem'"),
    ("tenant={t}", "--audience[0]: needs team=G and/or channel=NAME"),
    ("saved=nobody", "--audience[0]: no saved audience named 'nobody'"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs_are_errors_naming_them_and_store_nothing(
    cli_env: Stack, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    spec = spec.format(t=cli_env.tenants[0])
    before = snapshot(cli_env)
    assert run(["send", "--audience", spec, "--text", "x"]) == 2
    err = capsys.readouterr().err
    assert message in err and repr(spec)[:60] in err
    assert snapshot(cli_env) == before


def test_dry_run_prints_targets_counts_and_estimate_and_stores_nothing(
    cli_env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = cli_env.tenants
    before = snapshot(cli_env)
    argv = ["send", "--audience", general(first), "--audience", general(second), "--text", "x"]
    assert run([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"audience {general(first)}: 10 channels" in out
    assert "20 distinct channels in 2 tenant(s):" in out
    assert f"tenant {first}: 10" in out and f"tenant {second}: 10" in out
    assert out.count("  Engineering / General") == 2
    assert "estimate: about " in out and "(bound by " in out
    assert "limits: app 500/s, tenant 50/s, team 4/s, channel 1/s, 3000 posts" in out
    assert "behind a backlog of " in out
    assert "dry run: nothing was stored or sent" in out
    assert snapshot(cli_env) == before


def test_saved_audiences(
    cli_env: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = cli_env.tenants
    extra = {"tenant": second, "group": str(uuid.uuid4()), "channel": "19:saved@thread.tacv2"}
    (tmp_path / "extra.json").write_text(json.dumps([extra]))
    save = ["audience", "save", "all-general", "--audience", f"channel=General;tenant={first}"]
    assert run([*save, "--targets", "extra.json"]) == 0
    assert "saved audience all-general: 1 audience specs, 1 targets" in capsys.readouterr().out
    assert run(["audience", "list"]) == 0
    assert "all-general: 1 audience specs, 1 targets" in capsys.readouterr().out
    assert run(["audience", "show", "all-general", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["audiences"] == [general(first)] and shown["targets"] == [extra]

    assert run(["send", "--audience", "saved=all-general", "--text", "x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "audience saved=all-general: 11 channels" in out
    assert f"tenant {first}: 10" in out and f"tenant {second}: 1" in out

    # Bad definitions are refused whole; the saved one stays as it was.
    assert run(["audience", "save", "all-general", "--audience", "saved=other"]) == 2
    assert "cannot hold another" in capsys.readouterr().err
    assert run(["audience", "save", "bad name", "--audience", general(first)]) == 2
    assert run(["audience", "save", "empty"]) == 2
    assert run(["audience", "list", "--json"]) == 0
    assert [a["name"] for a in json.loads(capsys.readouterr().out)] == ["all-general"]

    assert run(["send", "--audience", "saved=all-general", "--text", "to the saved list"]) == 0
    broadcast_id = capsys.readouterr().out.split()[-1]
    rows = DeliveryQueries(cli_env.ledger.engine).page(broadcast_id, limit=100).rows
    assert len(rows) == 11 and (rows[-1].group, rows[-1].channel) == (
        extra["group"],
        extra["channel"],
    )
    # Gone out before the next test looks for what it writes.
    counts = cli_env.ledger.broadcasts.counts
    wait_for(lambda: counts(broadcast_id)["sent"] + counts(broadcast_id)["failed"] == 11)

    assert run(["audience", "delete", "all-general"]) == 0
    assert run(["audience", "delete", "all-general"]) == 1
    assert "no saved audience named 'all-general'" in capsys.readouterr().err
    assert run(["audience", "show", "all-general"]) == 1


# --- the HTTP API -------------------------------------------------------------------------------


def test_the_http_api_takes_audiences_and_a_dry_run(stack: Stack) -> None:
    first = stack.tenants[0]
    server = start_api(settings_from(stack.env | {"THREADCAST_API_KEYS": f"aud:{API_KEY}"}))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
            before = snapshot(stack)
            body = {"content": "<p>hi</p>", "audiences": [general(first)]}
            dry = http.post("/v1/broadcasts/dry-run", json=body)
            assert dry.status_code == 200, dry.text
            plan = dry.json()
            assert plan["audiences"] == [{"audience": general(first), "channels": 10}]
            assert plan["per_tenant"] == {first: 10} and len(plan["targets"]) == 10
            assert plan["targets"][0]["channel_name"] == "General"
            assert plan["estimate"]["seconds"] > 0 and "estimate: about" in plan["estimate"]["text"]
            bad = http.post("/v1/broadcasts", json={"content": "x", "audiences": ["tenant=x"]})
            assert bad.status_code == 422
            assert bad.json()["error"]["fields"][0]["field"] == "audiences[0]"
            neither = http.post("/v1/broadcasts", json={"content": "x"})
            assert neither.status_code == 422 and "targets, audiences or both" in neither.text
            assert snapshot(stack) == before

            sent = http.post("/v1/broadcasts", json=body)
            assert sent.status_code == 201, sent.text
            assert sent.json()["deliveries"] == 10
    finally:
        server.stop()
