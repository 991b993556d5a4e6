"""The command line: defaults come from SimConfig, bad values are refused before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import build_parser, config_from
from simulator.config import SimConfig
from simulator.server import Endpoints, write_ready_file


def test_defaults_are_the_config_defaults() -> None:
    assert config_from(build_parser().parse_args([])) == SimConfig()


def test_every_flag() -> None:
    argv = [
        "--host",
        "::1",
        "--port",
        "0",
        "--state-dir",
        "s",
        "--ready-file",
        "r.json",
        "--device-approve-delay",
        "0.5",
        "--token-lifetime",
        "60",
        "--refresh-grace",
        "3",
        "--log-level",
        "debug",
    ]
    assert config_from(build_parser().parse_args(argv)) == SimConfig(
        host="::1",
        port=0,
        state_dir=Path("s"),
        ready_file=Path("r.json"),
        device_approve_delay=0.5,
        token_lifetime=60,
        refresh_grace=3.0,
        log_level="debug",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--token-lifetime", "0"],
        ["--refresh-grace", "-1"],
        ["--device-approve-delay", "nan"],
        ["--log-level", "loud"],
    ],
)
def test_bad_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "https://127.0.0.1:9"),
        ("0.0.0.0", "https://127.0.0.1:9"),
        ("::", "https://[::1]:9"),
        ("::1", "https://[::1]:9"),
        ("localhost", "https://localhost:9"),
    ],
)
def test_advertised_urls(host: str, base: str, tmp_path: Path) -> None:
    endpoints = Endpoints.of(host, 9, tmp_path / "ca.pem")
    assert (endpoints.graph_url, endpoints.authority_host) == (base, base)
    assert endpoints.admin_url == f"{base}/_sim"


def test_the_ready_file(tmp_path: Path) -> None:
    endpoints = Endpoints.of("127.0.0.1", 9, tmp_path / "ca.pem")
    write_ready_file(tmp_path / "deep" / "ready.json", endpoints.ready_json())
    ready = json.loads((tmp_path / "deep" / "ready.json").read_text())
    assert set(ready) == {"graph_url", "authority_host", "admin_url", "ca_bundle", "pid"}
    assert ready["ca_bundle"] == str(tmp_path / "ca.pem")
    assert list((tmp_path / "deep").iterdir()) == [tmp_path / "deep" / "ready.json"]
