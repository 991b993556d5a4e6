"""THREADCAST_API_KEYS: parsing, hashed keys, identification, and never echoing a key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from threadcast.apikeys import identify, parse_api_keys
from threadcast.errors import ConfigError
from threadcast.settings import load_settings

PLAIN = "plain-key-0123456789"
OTHER = "other-key-9876543210"
HASHED = "sha256:" + hashlib.sha256(OTHER.encode()).hexdigest()


def test_plain_and_hashed_keys_identify_their_names() -> None:
    keys = parse_api_keys(f" svc:{PLAIN} , ops:{HASHED},")
    assert [k.name for k in keys] == ["svc", "ops"]
    assert identify(keys, PLAIN) == keys[0] and identify(keys, OTHER) == keys[1]
    assert identify(keys, HASHED) is None  # the hash itself is not a key
    assert identify(keys, PLAIN + "x") is None
    assert identify(keys, "") is None


def test_upper_case_hex_is_accepted() -> None:
    keys = parse_api_keys("ops:sha256:" + hashlib.sha256(OTHER.encode()).hexdigest().upper())
    found = identify(keys, OTHER)
    assert found is not None and found.name == "ops"


def test_operator_keys_see_every_broadcast_plain_keys_their_own() -> None:
    keys = parse_api_keys(f"svc:{PLAIN},operator@ops:{HASHED},odd:{PLAIN}x:operator")
    assert [(k.name, k.operator) for k in keys] == [("svc", False), ("ops", True), ("odd", False)]
    svc, ops, odd = keys
    assert identify(keys, f"{PLAIN}x:operator") == odd  # a colon in a key is part of the key
    assert svc.owns("svc") and not svc.owns("ops") and not svc.owns("cli")
    assert ops.owns("svc") and ops.owns("schedule:weekly")
    assert repr(ops) == "ApiKey(name='ops', operator=True)"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "at least one name:key"),
        (" , ", "at least one name:key"),
        (PLAIN, "entry 1 must be name:key"),
        (f"bad name:{PLAIN}", "entry 1 must be name:key"),
        (f"/etc:{PLAIN}", "entry 1 must be name:key"),
        ("svc:short", "at least 16 characters"),
        ("svc:sha256:abc", "64 hex digits"),
        (f"svc:{PLAIN},svc:{OTHER}", "repeated: svc"),
        (f"svc:{PLAIN},operator@svc:{OTHER}", "repeated: svc"),
        (f"admin@svc:{PLAIN}", "the role before '@' can only be 'operator'"),
        (f"@svc:{PLAIN}", "the role before '@' can only be 'operator'"),
        (f"operator@:{PLAIN}", "entry 1 must be name:key or operator@name:key"),
        (f"svc\n:{PLAIN}", "entry 1 must be name:key"),
    ],
)
def test_malformed_entries_are_refused_without_echoing_keys(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_api_keys(raw)
    assert PLAIN not in str(caught.value) and OTHER not in str(caught.value)


def test_repr_shows_no_digest() -> None:
    [key] = parse_api_keys(f"svc:{PLAIN}")
    assert repr(key) == "ApiKey(name='svc', operator=False)"


def test_the_setting_is_checked_at_start_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THREADCAST_API_KEYS", f"svc:{PLAIN},broken")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("THREADCAST_API_KEYS: entry 2 must be name:key")
    assert PLAIN not in text and "\n" not in text


def test_api_settings_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("API_KEYS", "API_MAX_BODY_BYTES", "API_MAX_TARGETS", "LOG_JSON", "METRICS_PORT"):
        monkeypatch.delenv(f"THREADCAST_{name}", raising=False)
    settings = load_settings()
    assert settings.api_keys is None and settings.metrics_port is None
    assert settings.api_max_body_bytes == 1024 * 1024 and settings.api_max_targets == 5000
    assert settings.log_json is False and settings.task_events is False
    monkeypatch.setenv("THREADCAST_API_MAX_TARGETS", "0")
    with pytest.raises(ConfigError, match="THREADCAST_API_MAX_TARGETS"):
        load_settings()
