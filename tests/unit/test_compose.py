"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The file is validated against the Compose Specification's JSON schema (shipped inside
check-jsonschema), then against what threadcast needs: services, one image, environments
that load as Settings, health checks, start order, profiles, volumes and a scalable worker.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509

from producer.api import create_app
from producer.api.auth import PROTECTED
from producer.cli import build_parser
from simulator.cli import build_parser as simulator_parser
from simulator.tls import subject_alt_names
from threadcast.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CORE = {"redis", "postgres", "worker", "scheduler", "api"}
SIMULATOR = {"sim", "login", "flower"}
THREADCAST = {"worker", "scheduler", "api", "sim", "login", "flower"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, and $$ for a literal $."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in env:
            return env[name]
        if kind == "?":
            raise KeyError(f"{name} is required: {rest}")
        return rest if kind == "-" else ""

    return _VARIABLE.sub(one, value).replace("$$", "$")


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_services_profiles_and_images(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == CORE | SIMULATOR
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert "container_name" not in service, name
        expected = ["simulator"] if name in {"sim", "login"} else None
        if name == "flower":
            expected = ["simulator", "flower"]
        assert service.get("profiles") == expected, name
    images = {services[n]["image"] for n in THREADCAST}
    assert len(images) == 1  # one image, every role
    assert all(services[n]["build"]["dockerfile"] == "Dockerfile" for n in THREADCAST)


def test_the_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker and "hostname" not in worker
    assert worker["command"] == ["worker"]
    assert worker.get("init") is True and worker["stop_grace_period"]


def test_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("redis", "postgres", "api", "sim", "flower"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3, name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    # It probes a route that exists and needs no key.
    app = create_app(Settings(api_keys="probe:probe-key-0123456789"))
    assert "/healthz" in app.openapi()["paths"] and not "/healthz".startswith(PROTECTED)


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} -> {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} -> {dependency}"
            if services[dependency].get("profiles") and not service.get("profiles"):
                # A core service must start without the profile that holds its dependency.
                assert rule.get("required") is False, f"{name} -> {dependency}"
    for name in THREADCAST - {"sim"}:
        rules = services[name]["depends_on"]
        assert rules["redis"]["condition"] == rules["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["login"]["condition"] == "service_completed_successfully"


def environment(service: dict[str, Any], **given: str) -> dict[str, str]:
    env = {"THREADCAST_TOKEN_CACHE_KEY": "k", "THREADCAST_API_KEYS": "k"} | given
    return {k: interpolate(str(v), env) for k, v in (service.get("environment") or {}).items()}


def test_environments_load_as_settings(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    given = {
        "THREADCAST_TOKEN_CACHE_KEY": "dGhyZWFkY2FzdC10ZXN0LWtleS0wMTIzNDU2Nzg5YWI=",
        "THREADCAST_API_KEYS": "demo:demo-key-0123456789",
    }
    fields = set(Settings.model_fields)
    for name in THREADCAST - {"sim"}:
        env = environment(services[name], **given)
        threadcast = {k: v for k, v in env.items() if k.startswith("THREADCAST_")}
        unknown = {k for k in threadcast if k.removeprefix("THREADCAST_").lower() not in fields}
        assert unknown == set(), name
        values = {k.removeprefix("THREADCAST_").lower(): v for k, v in threadcast.items()}
        if "ca_bundle" in values:
            assert values["ca_bundle"] == "/sim/ca.pem"
            values["ca_bundle"] = str(ca)
        settings = Settings(**values)  # type: ignore[arg-type]
        assert settings.redis_url == "redis://redis:6379/0", name
        assert settings.database_url.startswith("postgresql://threadcast:"), name
        assert settings.log_json is True, name


def test_secrets_are_required_and_go_only_where_needed(services: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(KeyError, match="THREADCAST_API_KEYS"):
        interpolate(services["api"]["environment"]["THREADCAST_API_KEYS"], {})
    with pytest.raises(KeyError, match="THREADCAST_TOKEN_CACHE_KEY"):
        interpolate(services["worker"]["environment"]["THREADCAST_TOKEN_CACHE_KEY"], {})
    api_env = services["api"]["environment"]
    assert "THREADCAST_TOKEN_CACHE_KEY" not in api_env and "THREADCAST_CLIENT_ID" not in api_env
    for name in THREADCAST - {"api", "sim"}:
        assert "THREADCAST_API_KEYS" not in services[name]["environment"], name


def test_metrics_and_task_events(services: dict[str, dict[str, Any]]) -> None:
    worker = environment(services["worker"])
    assert worker["THREADCAST_METRICS_PORT"] == "9100"
    assert worker["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert environment(services["scheduler"])["THREADCAST_METRICS_PORT"] == "9100"
    for name in ("worker", "flower"):
        assert environment(services[name])["THREADCAST_TASK_EVENTS"] == "true", name
    assert services["flower"]["entrypoint"] == ["celery", "-A", "worker"]
    assert services["flower"]["command"][0] == "flower"


def test_commands_are_threadcast_commands(services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in ("worker", "scheduler", "api", "sim"):
        command = services[name]["command"]
        assert command[0] in known, name
        if name == "api":
            args = parser.parse_args(command)
            assert (args.host, args.port) == ("0.0.0.0", 8000)
            assert services[name]["ports"] == ["${THREADCAST_API_PORT:-8000}:8000"]
    sim = simulator_parser().parse_args(services["sim"]["command"][1:])
    assert (sim.host, sim.port, str(sim.state_dir)) == ("sim", 8443, "/sim")
    login = services["login"]["command"][0]
    assert "threadcast login --tenant $$tenant" in login and "$$DEMO_TENANTS" in login


def test_the_simulator_certificate_covers_the_name_clients_use(
    services: dict[str, dict[str, Any]],
) -> None:
    sim = services["sim"]
    command = sim["command"]
    host = command[command.index("--host") + 1]
    graph_url = environment(services["worker"])["THREADCAST_GRAPH_URL"]
    assert graph_url == f"https://{host}:8443" and sim["hostname"] == host
    assert x509.DNSName(host) in subject_alt_names(host)
    assert command[command.index("--state-dir") + 1] == "/sim"


def test_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose["volumes"])
    assert declared == {"redis-data", "postgres-data", "sim-state"}
    assert "sim-state:/sim" in services["sim"]["volumes"]
    for name in THREADCAST - {"sim", "api"}:
        [mount] = services[name]["volumes"]
        assert (mount["source"], mount["target"], mount["read_only"]) == ("sim-state", "/sim", True)
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_dockerfile_and_dockerignore() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["threadcast"]' in lines
    assert any("chown" in line and "/sim" in line for line in lines)
    for package in ("producer", "worker", "threadcast", "simulator"):
        assert f"COPY {package} ./{package}" in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".env", "tests"} <= set(ignored)
