"""A channel over its daily quota: its deliveries hold until midnight UTC, visibly, never
failed (the real worker and dispatcher; each channel may take one post a day here)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producer import Producer
from producer.cli import main
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for

STACK_ENV = {"THREADCAST_CHANNEL_DAILY": "1"}


def test_a_channel_over_its_daily_quota_holds_until_midnight_and_status_says_why(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = [
        {
            "tenant": stack.tenants[0],
            "group": str(uuid.uuid4()),
            "channel": f"19:{uuid.uuid4().hex}@thread.tacv2",
        }
    ]
    with Producer(stack.settings) as producer:
        first = producer.send("<p>today's one</p>", target, content_type="html").broadcast_id
        wait_for(lambda: producer.ledger.broadcasts.counts(first)["sent"] == 1)
        held = producer.send("<p>one too many</p>", target, content_type="html").broadcast_id
        wait_for(
            lambda: producer.ledger.broadcasts.waiting(held) != [],
            what="the quota hold noted in the ledger",
        )
        counts = producer.ledger.broadcasts.counts(held)
    assert counts["queued"] == 1 and counts["failed"] == counts["sent"] == 0

    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert main(["status", held, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [wait] = data["waiting"]
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert (wait["state"], wait["reason"], wait["count"]) == ("queued", "channel_daily_quota", 1)
    assert datetime.fromisoformat(wait["until"]) == midnight
    assert not data["done"]
    assert main(["status", held]) == 0
    shown = capsys.readouterr().out
    assert "queued, channel_daily_quota until" in shown and "daily message quota" in shown
