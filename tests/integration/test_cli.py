"""The command line against the real stack: send, status, and bad input that writes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from producer.cli import main
from tests.integration.conftest import Stack
from tests.integration.stack import footprint, wait_for

BAD_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db4"  # one digit short


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return stack


def snapshot(stack: Stack) -> tuple[object, ...]:
    return footprint(stack.ledger, stack.redis)


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def one(stack: Stack, **over: str) -> list[str]:
    values = {"tenant": stack.tenants[0], "group": str(uuid.uuid4())}
    values |= {"channel": "19:a@thread.tacv2"} | over
    return [f"--{k}={v}" for k, v in values.items()]


def test_send_one_then_status_json(cli_env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["send", *one(cli_env), "--html", "<b>cli</b>"]) == 0
    broadcast_id = capsys.readouterr().out.split()[-1]
    wait_for(lambda: cli_env.ledger.broadcasts.counts(broadcast_id)["sent"] == 1)
    assert run(["status", broadcast_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sent"] == 1 and data["failed"] == 0 and data["queued"] == 0 and data["done"]
    assert run(["status", broadcast_id]) == 0
    assert "sent" in capsys.readouterr().out


def test_send_targets_file_with_watch(
    cli_env: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = str(uuid.uuid4())
    lines = ["tenant,group,channel"] + [
        f"{cli_env.tenants[i % 2]},{group},19:f{i}@thread.skype" for i in range(12)
    ]
    (tmp_path / "targets.csv").write_text("\n".join(lines) + "\n")
    content = tmp_path / "note.html"
    content.write_text("<p>from a file</p>")
    assert run(["send", "--targets", "targets.csv", "--file", str(content), "--watch"]) == 0
    out = capsys.readouterr().out
    broadcast_id = out.split()[-1]
    assert "12/12 sent" in out
    assert cli_env.ledger.broadcasts.counts(broadcast_id)["sent"] == 12


def test_unknown_broadcast_status_is_an_error(
    cli_env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["status", "no-such-broadcast"]) == 1
    assert "no broadcast with id 'no-such-broadcast'" in capsys.readouterr().err


BAD_TARGETS = [
    ("tenant", BAD_GUID, "--tenant: must be a GUID"),
    ("group", "not-a-guid", "--group: must be a GUID"),
    ("channel", "19:a/b@thread.tacv2", "--channel: must be a Teams channel id"),
    ("channel", "19:a..b@thread.tacv2", "--channel: must be a Teams channel id"),
    ("channel", "19:a?x=1@thread.tacv2", "--channel: must be a Teams channel id"),
    ("channel", "19:a#b@thread.tacv2", "--channel: must be a Teams channel id"),
    ("channel", "general", "--channel: must be a Teams channel id"),
    ("tenant", "00000000-0000-0000-0000-000000000001", "has never signed in"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_TARGETS)
def test_bad_target_writes_nothing(
    cli_env: Stack, capsys: pytest.CaptureFixture[str], field: str, value: str, message: str
) -> None:
    before = snapshot(cli_env)
    assert run(["send", *one(cli_env, **{field: value}), "--text", "hi"]) == 2
    err = capsys.readouterr().err
    assert message in err and value in err and err.count("\n") == 1
    assert snapshot(cli_env) == before


@pytest.mark.parametrize(
    ("content_args", "message"),
    [
        (["--text", "   "], "content: must be non-empty"),
        (["--html", "x" * (28 * 1024 + 1)], "content: must be at most 28672 bytes"),
        (["--file", "missing.txt"], "--file: cannot be read"),
        (["--file", "note.txt", "--type", "markdown"], "invalid choice: 'markdown'"),
    ],
)
def test_bad_content_writes_nothing(
    cli_env: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content_args: list[str],
    message: str,
) -> None:
    (tmp_path / "note.txt").write_text("hello")
    before = snapshot(cli_env)
    assert run(["send", *one(cli_env), *content_args]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(cli_env) == before


def test_malformed_targets_file_reports_the_line(
    cli_env: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = str(uuid.uuid4())
    lines = ["tenant,group,channel"] + [
        f"{cli_env.tenants[0]},{group},19:ok{i}@thread.tacv2" for i in range(5)
    ]
    lines.insert(4, f"{cli_env.tenants[0]},{group},19:../../admin@thread.tacv2")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    before = snapshot(cli_env)
    assert run(["send", "--targets", "t.csv", "--text", "hi"]) == 2
    err = capsys.readouterr().err
    assert "t.csv line 5.channel: must be a Teams channel id" in err
    assert snapshot(cli_env) == before


def test_missing_required_setting_is_one_line(
    cli_env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("THREADCAST_CLIENT_ID")
    assert run(["login", "--tenant", cli_env.tenants[0]]) == 2
    expected = "threadcast: error: THREADCAST_CLIENT_ID is required but not set\n"
    assert capsys.readouterr().err == expected
