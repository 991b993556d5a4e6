"""A refused setting is shown in its one-line error, but never a password in a URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from threadcast.errors import ConfigError
from threadcast.settings import load_settings

SECRET = "s3cr3t-p@ss/word"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("THREADCAST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        (
            "THREADCAST_DATABASE_URL",
            f"mysql://app:{SECRET}@db.internal/threadcast",
            "'mysql://app:***@db.internal/threadcast'",
        ),
        (
            "THREADCAST_DATABASE_URL",
            f"postgres://app:{SECRET}@db:5432/t?sslmode=require",
            "'postgres://app:***@db:5432/t?sslmode=require'",
        ),
        (
            "THREADCAST_DATABASE_URL",
            f"mysql://db/t?sslmode=require&password={SECRET}",
            "'mysql://db/t?sslmode=require&password=***'",
        ),
        ("THREADCAST_REDIS_URL", f"http://:{SECRET}@cache:6379/0", "'http://:***@cache:6379/0'"),
        ("THREADCAST_REDIS_URL", "http://cache:6379/0", "'http://cache:6379/0'"),
    ],
)
def test_a_refused_url_is_shown_without_its_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, shown: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(f"{variable}: ") and text.endswith(f"(got {shown})")
    assert "s3cr3t" not in text and "ss/word" not in text
