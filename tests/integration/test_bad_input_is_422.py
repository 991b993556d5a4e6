"""Bad input is a 422 naming the field, never an outage: values the ledger cannot store (NUL
on PostgreSQL, a send time past year 9999 in UTC, a lone surrogate, a page cursor past 64
bits), JSON nested deeper than the parser goes, and bodies with thousands of bad targets. The
same inputs at the CLI and from Python are a one-line error, never a traceback, and nothing
is stored. Real HTTP (uvicorn), the real stack behind it, both ledger backends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer import Producer
from producer.cli import main
from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import footprint
from threadcast.errors import ValidationError

KEY = "outage-" + "k" * 25
MAX_TARGETS = 20
MAX_BODY = 64 * 1024
MAX_LISTED = 20  # field errors a 422 lists at most
FAR = "9999-12-31T23:59:59-12:00"  # year 10000 in UTC
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    env = stack.env | {
        "THREADCAST_API_KEYS": f"svc:{KEY}",
        "THREADCAST_API_MAX_TARGETS": str(MAX_TARGETS),
        "THREADCAST_API_MAX_BODY_BYTES": str(MAX_BODY),
    }
    server: RunningApi = start_api(settings_from(env))
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as client:
        yield client
    server.stop()


@pytest.fixture
def unchanged(stack: Stack, http: httpx.Client) -> Iterator[None]:
    """Nothing stored, and the server still serves afterwards."""
    before = footprint(stack.ledger, stack.redis)
    yield
    assert footprint(stack.ledger, stack.redis) == before
    assert http.get("/healthz").status_code == 200


def target(stack: Stack) -> dict[str, str]:
    return {
        "tenant": stack.tenants[0],
        "group": str(uuid.uuid4()),
        "channel": f"19:{uuid.uuid4().hex}@thread.tacv2",
    }


def raw_body(stack: Stack, content_json: str, **over: Any) -> bytes:
    """A request body with ``content`` written as raw JSON text (httpx would refuse to
    encode a lone surrogate)."""
    rest = json.dumps({"targets": [target(stack)], **over})
    return b'{"content": ' + content_json.encode() + b", " + rest[1:].encode()


def error_of(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status and error["message"]
    return error


def fields_of(response: httpx.Response) -> list[str]:
    return [f["field"] for f in error_of(response)["fields"]]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('"a\\u0000b"', "content"),  # NUL: PostgreSQL text cannot hold it
        ('"\\ud800 lone"', "content"),  # a lone surrogate is no Unicode text
        ('"ok"', "send_at"),
    ],
    ids=["nul", "surrogate", "far-send-at"],
)
def test_values_the_ledger_cannot_store_are_422(
    stack: Stack, http: httpx.Client, body: str, field: str
) -> None:
    over = {"send_at": FAR} if field == "send_at" else {}
    response = http.post("/v1/broadcasts", content=raw_body(stack, body, **over), headers=JSON)
    assert fields_of(response) == [field]


def test_nul_in_a_retry_filter_is_422(stack: Stack, http: httpx.Client) -> None:
    sent = http.post(
        "/v1/broadcasts",
        json={"content": "later", "targets": [target(stack)], "send_at": "2999-01-01T00:00:00Z"},
    )
    broadcast_id = sent.json()["broadcast_id"]
    before = footprint(stack.ledger, stack.redis)
    response = http.post(
        f"/v1/broadcasts/{broadcast_id}/retry", json={"states": ["failed"], "error_code": "x\x00y"}
    )
    assert fields_of(response) == ["error_code"]
    assert footprint(stack.ledger, stack.redis) == before
    assert http.post(f"/v1/broadcasts/{broadcast_id}/cancel").json()["cancelled"] == 1


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("after", [10**23, 2**63, 2**31])
def test_a_page_cursor_past_any_seq_is_422(http: httpx.Client, after: int) -> None:
    response = http.get("/v1/broadcasts/some-id/deliveries", params={"after": after})
    assert fields_of(response) == ["after"]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 30_000 + b"]" * 30_000,
        b'{"content": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b"[" * 50_000,
        b'{"content": "\xff\xfe"}',
    ],
    ids=["deep-list", "deep-content", "deep-unclosed", "not-utf8"],
)
def test_json_the_parser_gives_up_on_is_422_naming_the_body(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/v1/broadcasts", content=raw, headers=JSON)
    assert fields_of(response) == ["body"]


@pytest.mark.usefixtures("unchanged")
def test_the_target_cap_comes_before_validating_each_target(http: httpx.Client) -> None:
    many = b'{"content": "x", "targets": [' + b",".join([b"{}"] * 16_000) + b"]}"
    assert len(many) < MAX_BODY
    response = http.post("/v1/broadcasts", content=many, headers=JSON)
    error = error_of(response, 413)
    assert error["message"] == (
        f"targets: 16000 targets, at most {MAX_TARGETS} per request (THREADCAST_API_MAX_TARGETS)"
    )
    assert len(response.content) < 1000


@pytest.mark.usefixtures("unchanged")
def test_a_422_lists_a_bounded_number_of_fields_and_counts_the_rest(http: httpx.Client) -> None:
    bad = {"content": 5, "targets": [{}] * MAX_TARGETS}  # 1 + 3 x 20 errors
    response = http.post("/v1/broadcasts", json=bad)
    error = error_of(response)
    assert len(error["fields"]) == MAX_LISTED
    assert error["fields"][0] == {"field": "content", "message": "Input should be a valid string"}
    assert error["message"].endswith(f"({1 + 3 * MAX_TARGETS - MAX_LISTED} more not listed)")
    assert len(response.content) < 4000


# The CLI and Python: the same inputs, one line each, nothing stored.


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    return stack.env


def one_line(capsys: pytest.CaptureFixture[str], field: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"threadcast: error: {field}"), err


def single(stack: Stack) -> list[str]:
    t = target(stack)
    return ["send", "--tenant", t["tenant"], "--group", t["group"], "--channel", t["channel"]]


@pytest.mark.usefixtures("cli_env", "unchanged")
def test_the_cli_refuses_the_same_values_in_one_line(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nul = tmp_path / "nul.txt"
    nul.write_text("a\x00b")
    assert main([*single(stack), "--file", str(nul)]) == 2
    one_line(capsys, "content")
    assert main([*single(stack), "--text", "\ud800 lone"]) == 2
    one_line(capsys, "--text")
    assert main([*single(stack), "--text", "hi", "--at", FAR]) == 2
    one_line(capsys, "send_at")


@pytest.mark.usefixtures("unchanged")
def test_text_that_is_not_utf8_on_the_command_line(stack: Stack) -> None:
    argv = [a.encode() for a in single(stack)] + [b"--text", b"caf\xe9 \xff"]
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"producer.cli", *argv],
        env=stack.env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr
    assert done.stderr.startswith(b"threadcast: error: --text: ")


@pytest.mark.usefixtures("cli_env", "unchanged")
@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("long.csv", "tenant,group,channel\n" + "x" * (200 * 1024) + ",g,c\n", "line 2"),
        ("long-header.csv", "x" * (200 * 1024) + ",group,channel\n", "line 1"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "line 1"),
        ("deep-item.json", "[" + "[" * 100_000, "line 1"),
    ],
)
def test_the_cli_refuses_a_targets_file_it_cannot_parse_in_one_line(
    stack: Stack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
    where: str,
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["send", "--targets", str(path), "--text", "hi"]) == 2
    one_line(capsys, f"{path} {where}")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"content": "a\x00b"}, "content"),
        ({"content": "\udfff"}, "content"),
        ({"send_at": datetime.fromisoformat(FAR)}, "send_at"),
        ({"source": "me\x00"}, "source"),
    ],
)
def test_python_callers_get_a_validation_error(
    stack: Stack, over: dict[str, Any], field: str
) -> None:
    kwargs: dict[str, Any] = {"content": "hello", "targets": [target(stack)]} | over
    with Producer(stack.settings) as producer, pytest.raises(ValidationError) as caught:
        producer.send(kwargs.pop("content"), kwargs.pop("targets"), **kwargs)
    assert caught.value.field == field
    assert "\n" not in str(caught.value)
