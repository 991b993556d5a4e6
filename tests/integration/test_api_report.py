"""One broadcast report on every surface: ``threadcast status --json`` and
``GET /v1/broadcasts/{id}`` show every field of :class:`BroadcastReport`, with the same value.

The fields are read from the model, not listed here: a field added to the report without
reaching one of the surfaces fails this test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from producer.cli import main
from producer.reports import BroadcastReport
from tests.integration.apiserver import start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import wait_for

KEY = "report-" + "r" * 25


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    server = start_api(settings_from(stack.env | {"THREADCAST_API_KEYS": f"reports:{KEY}"}))
    http = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )
    try:
        yield http
    finally:
        http.close()
        server.stop()


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return stack


def fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field of the model, and of the models it holds, as dotted paths."""
    for name, info in model.model_fields.items():
        yield prefix + name
        held = info.annotation
        if isinstance(held, type) and issubclass(held, BaseModel):
            yield from fields(held, f"{prefix}{name}.")


def pick(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        assert part in data, f"{path!r} is missing"
        data = data[part]
    return data


def both(
    api: httpx.Client, broadcast_id: str, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``threadcast status --json`` prints and what the API answers, for one broadcast."""
    assert main(["status", broadcast_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    answered = api.get(f"/v1/broadcasts/{broadcast_id}").raise_for_status().json()
    return shown, answered


def targets(tenant: str, teams: list[str], per_team: int) -> list[dict[str, str]]:
    return [
        {"tenant": tenant, "group": team, "channel": f"19:rep{uuid.uuid4().hex[:8]}@thread.tacv2"}
        for team in teams
        for _ in range(per_team)
    ]


def test_every_report_field_is_on_the_cli_and_the_api(
    cli: Stack, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    # Some sent, some failed (a team the signed-in user is not a member of): errors to show.
    tenant = cli.tenants[0]
    outside, inside = str(uuid.uuid4()), str(uuid.uuid4())
    cli.sim.membership(tenant, outside, member=False)
    try:
        body = {
            "content": f"<p>report {uuid.uuid4()}</p>",
            "targets": targets(tenant, [outside, inside], 2),
        }
        broadcast_id = (
            api.post("/v1/broadcasts", json=body).raise_for_status().json()["broadcast_id"]
        )
        wait_for(
            lambda: (
                cli.ledger.broadcasts.counts(broadcast_id)["sent"] == 2
                and cli.ledger.broadcasts.counts(broadcast_id)["failed"] == 2
            ),
            what="2 sent and 2 failed",
        )
    finally:
        cli.sim.membership(tenant, outside, member=True)
    # And one waiting for its send time: nothing moves it while it is read twice.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = {"content": "<p>later</p>", "targets": targets(tenant, [inside], 1), "send_at": later}
    scheduled = api.post("/v1/broadcasts", json=body).raise_for_status().json()["broadcast_id"]

    paths = list(fields(BroadcastReport))
    assert "waiting" in paths and "endpoint.attempts" in paths  # the walk reaches nested fields
    for one in (broadcast_id, scheduled):
        shown, answered = both(api, one, capsys)
        for path in paths:
            assert pick(shown, path) == pick(answered, path), path
    assert answered["send_at"] is not None and answered["counts"]["scheduled"] == 1

    shown, answered = both(api, broadcast_id, capsys)
    assert len(answered["errors"]) == 2 and answered["errors"][0]["http_status"] == 403
    assert answered["done"] and answered["settled"] == 4
    assert answered["endpoint"]["attempts"]  # the API did not have these before
    # status --json keeps the keys it had before the API shared the report.
    assert shown["broadcast"] == broadcast_id and (shown["sent"], shown["failed"]) == (2, 2)
