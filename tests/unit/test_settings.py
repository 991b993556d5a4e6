from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from threadcast.dispatch.limits import Limits, TenantRates
from threadcast.errors import ConfigError
from threadcast.settings import load_settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("THREADCAST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.database_url == f"sqlite:///{tmp_path / 'threadcast.db'}"
    assert s.graph_url == "https://graph.microsoft.com"
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.client_id is None and s.client_secret is None and s.ca_bundle is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("THREADCAST_GRAPH_URL", "http://graph.local", "THREADCAST_GRAPH_URL: must be an https"),
        ("THREADCAST_AUTHORITY_HOST", "ftp://x", "THREADCAST_AUTHORITY_HOST: must be an https"),
        ("THREADCAST_REDIS_URL", "mysql://x", "THREADCAST_REDIS_URL: must start with redis"),
        ("THREADCAST_DATABASE_URL", "oracle://x", "THREADCAST_DATABASE_URL: must be sqlite"),
        ("THREADCAST_CA_BUNDLE", "/no/such.pem", "THREADCAST_CA_BUNDLE: no such file"),
        ("THREADCAST_HTTP_TIMEOUT", "soon", "THREADCAST_HTTP_TIMEOUT: Input should be a valid"),
        ("THREADCAST_HTTP_TIMEOUT", "-1", "THREADCAST_HTTP_TIMEOUT: Input should be greater"),
        ("THREADCAST_TOKEN_CACHE_KEY", "short", "THREADCAST_TOKEN_CACHE_KEY: each comma"),
        ("THREADCAST_CHANNEL_RPS", "0", "THREADCAST_CHANNEL_RPS: Input should be greater than 0"),
        ("THREADCAST_CHANNEL_RPS", "-1", "THREADCAST_CHANNEL_RPS: Input should be greater than"),
        ("THREADCAST_CHANNEL_RPS", "fast", "THREADCAST_CHANNEL_RPS: Input should be a valid int"),
        (
            "THREADCAST_TENANT_LIMITS",
            f'{{"{TENANT}": {{"channel_rps": -1}}}}',
            "THREADCAST_TENANT_LIMITS: Input should be greater than or equal to 0",
        ),
    ],
)
def test_invalid_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_secret_values_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", "not-a-key-but-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "not-a-key-but-secret" not in str(caught.value)


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("THREADCAST_CLIENT_ID=abc\n")
    assert load_settings().client_id == "abc"


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="THREADCAST_CLIENT_ID is required"):
        load_settings().require("client_id")


def test_key_rotation_old_entries_still_decrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", old)
    blob = load_settings().cache_cipher().encrypt(b"cache")
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", f"{new},{old}")
    assert load_settings().cache_cipher().decrypt(blob) == b"cache"


def test_channel_rps_defaults_to_graphs_limit_and_is_overridden_per_tenant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().channel_rps == 1
    monkeypatch.setenv("THREADCAST_CHANNEL_RPS", "2")
    monkeypatch.setenv("THREADCAST_TENANT_LIMITS", f'{{"{TENANT}": {{"channel_rps": 0}}}}')
    limits = Limits.from_settings(load_settings())
    assert limits.for_tenant(TENANT) == TenantRates(50, 4, 3000, 0)  # 0 holds the tenant
    assert limits.for_tenant("00000000-0000-0000-0000-000000000001").channel == 2
    assert limits.overrides_json() == {TENANT: "[50, 4, 3000, 0]"}


def test_the_dispatch_backlog_follows_the_permits_the_gate_gives() -> None:
    assert load_settings().dispatch_room == 64  # Graph's 500/s: 100 ms of permits is 49
    assert load_settings(app_rps=5_000).dispatch_room == 491
    assert load_settings(app_rps=100_000).dispatch_room == 1024  # never beyond the in-flight cap
    assert load_settings(app_rps=100_000, dispatch_backlog=10).dispatch_room == 10  # set: as set
