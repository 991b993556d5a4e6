"""``threadcast api`` as an operator runs it: a process on a port, JSON logs, no secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from producer.cli import main
from producer.devredis import free_port

KEY = "process-key-" + "p" * 20


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("threadcast api did not come up")


def test_threadcast_api_serves_and_logs_json_without_secrets(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADCAST_")} | {
        "THREADCAST_REDIS_URL": redis_url,
        "THREADCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "THREADCAST_API_KEYS": f"ops:{KEY}",
        "THREADCAST_LOG_JSON": "true",
    }
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producer.cli",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, process)
            assert httpx.get(f"{url}/v1/broadcasts/b-1").status_code == 401
            keyed = {"Authorization": f"Bearer {KEY}"}
            assert httpx.get(f"{url}/v1/broadcasts/b-1", headers=keyed).status_code == 404
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    lines = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("/v1/broadcasts/b-1" in e["message"] and "404" in e["message"] for e in entries)
    assert KEY not in log_path.read_text()


def test_threadcast_api_refuses_to_start_without_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("THREADCAST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert main(["api", "--port", str(free_port())]) == 2
    assert "THREADCAST_API_KEYS is required but not set" in capsys.readouterr().err
