"""The scheduling settings: defaults, and a bad value stopping with one line naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from threadcast.errors import ConfigError
from threadcast.settings import load_settings


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("THREADCAST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.schedule_grace == 900 and settings.scheduler_lease_seconds == 5.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THREADCAST_SCHEDULE_GRACE", "-1"),
        ("THREADCAST_SCHEDULE_GRACE", "soon"),
        ("THREADCAST_SCHEDULER_LEASE_SECONDS", "0.5"),
        ("THREADCAST_SCHEDULER_LEASE_SECONDS", "61"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: .*got '{value}'"):
        load_settings()
