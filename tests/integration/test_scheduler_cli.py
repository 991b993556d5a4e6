"""``threadcast schedule …`` and ``threadcast send --at`` on every backend: the happy paths,
and bad input (invalid cron, unknown time zone, unknown schedule id, past send time) that
exits non-zero naming the value and stores nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from producer.cli import main
from threadcast.ledger import Ledger

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
ONE = ["--tenant", T, "--group", G, "--channel", "19:general@thread.tacv2"]


@pytest.fixture
def ledger(
    database_url: str,
    redis_url: str,
    clean_redis: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Ledger]:
    for name in [n for n in __import__("os").environ if n.startswith("THREADCAST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("THREADCAST_DATABASE_URL", database_url)
    monkeypatch.setenv("THREADCAST_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    opened = Ledger.open(database_url)
    opened.token_caches.save(T, "ciphertext: signed in", datetime.now(UTC))
    yield opened
    opened.close()


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def rows(ledger: Ledger) -> tuple[int, ...]:
    with ledger.engine.connect() as conn:
        return tuple(
            int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in ("schedules", "schedule_occurrences", "broadcasts", "deliveries")
        )


def add(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    argv = ["schedule", "add", "--cron", "0 9 * * MON", "--tz", "Europe/Berlin", *ONE]
    assert run([*argv, "--html", "<p>weekly</p>", *extra]) == 0
    return capsys.readouterr().out.split()[-1]


def out(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    assert run(argv) == code, argv
    captured = capsys.readouterr()
    return captured.out if code == 0 else captured.err


def test_schedule_lifecycle(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    sid = add(capsys, "--id", "weekly-notes", "--grace", "600")
    assert sid == "weekly-notes"
    [listed] = json.loads(out(capsys, ["schedule", "list", "--json"]))
    assert listed["id"] == sid and listed["state"] == "active" and listed["grace_seconds"] == 600
    assert listed["next"]["local"].endswith(("T09:00:00+01:00", "T09:00:00+02:00"))
    lines = out(capsys, ["schedule", "next", sid, "--count", "5"]).splitlines()
    assert len(lines) == 5 and all("T09:00:00+0" in line for line in lines)
    firsts = [datetime.fromisoformat(line.split()[0]) for line in lines]
    assert all(b - a >= timedelta(days=6) for a, b in pairwise(firsts))
    assert "no occurrences yet" in out(capsys, ["schedule", "show", sid])
    assert "is paused" in out(capsys, ["schedule", "pause", sid])
    assert "is active" in out(capsys, ["schedule", "resume", sid])
    first, second = json.loads(out(capsys, ["schedule", "next", sid, "--count", "2", "--json"]))
    assert "skipped" in out(capsys, ["schedule", "skip", sid, "--at", first["local"]])
    upcoming = json.loads(out(capsys, ["schedule", "next", sid, "--count", "2", "--json"]))
    assert [u["skipped"] for u in upcoming] == [True, False]
    shown = json.loads(out(capsys, ["schedule", "show", sid, "--json"]))
    assert shown["occurrences"][0]["state"] == "skipped"
    assert "is deleted" in out(capsys, ["schedule", "delete", sid])
    assert out(capsys, ["schedule", "list"]).strip() == "no schedules"
    assert sid in out(capsys, ["schedule", "list", "--all"])
    assert "is deleted" in out(capsys, ["schedule", "skip", sid, "--at", second["local"]], 2)


BAD_ADD = [
    (["--cron", "0 9 * * FUNDAY", "--tz", "Europe/Berlin"], "0 9 * * FUNDAY"),
    (["--cron", "61 9 * * *", "--tz", "Europe/Berlin"], "61 9 * * *"),
    (["--cron", "0 9 * * MON", "--tz", "Europe/Berlinn"], "Europe/Berlinn"),
    (["--cron", "0 9 * * MON", "--tz", "Europe/Berlin", "--id", "no spaces"], "no spaces"),
    (["--cron", "0 9 * * MON", "--tz", "Europe/Berlin", "--grace", "-5"], "-5"),
]


def test_bad_input_is_named_and_stores_nothing(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, named in BAD_ADD:
        assert named in out(capsys, ["schedule", "add", *argv, *ONE, "--text", "hi"], 2)
    stranger = str(uuid.uuid4())
    argv = ["schedule", "add", "--cron", "0 9 * * *", "--tz", "UTC", "--tenant", stranger]
    argv += ["--group", G, "--channel", "19:x@thread.tacv2", "--text", "hi"]
    assert stranger in out(capsys, argv, 2)  # never signed in
    for action in ("pause", "resume", "delete", "show", "next", "skip"):
        extra = ["--at", "2030-01-06T09:00:00+01:00"] if action == "skip" else []
        assert "no-such-schedule" in out(
            capsys, ["schedule", action, "no-such-schedule", *extra], 1
        )
    assert rows(ledger) == (0, 0, 0, 0)
    sid = add(capsys)
    before = rows(ledger)
    skip = ["schedule", "skip", sid, "--at"]
    assert "is not an occurrence" in out(capsys, [*skip, "2030-01-01T10:00:00+01:00"], 2)
    assert "already fired" in out(capsys, [*skip, "2020-01-06T09:00:00+01:00"], 2)
    assert "ISO 8601" in out(capsys, [*skip, "next monday"], 2)
    assert rows(ledger) == before


BAD_AT = [
    ("2020-01-01T09:00:00+01:00", "in the past"),
    ("2030-01-01T09:00:00", "UTC offset"),
    ("soon", "ISO 8601"),
]


def test_send_at(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    for at, message in BAD_AT:
        err = out(capsys, ["send", *ONE, "--text", "x", "--at", at], 2)
        assert "--at" in err and message in err and at in err
    assert rows(ledger) == (0, 0, 0, 0)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone().isoformat()
    printed = out(capsys, ["send", *ONE, "--text", "tomorrow", "--at", tomorrow])
    assert "scheduled for" in printed
    assert ledger.broadcasts.counts(printed.split()[-1])["scheduled"] == 1
    past = ["--at", "2020-01-01T09:00:00+01:00", "--now-if-past"]
    printed = out(capsys, ["send", *ONE, "--text", "x", *past])
    assert ledger.broadcasts.counts(printed.split()[-1])["queued"] == 1
