"""Configuration: one ``Settings`` object read from ``THREADCAST_*`` variables and ``.env``.

Nothing reads the environment at import time; entry points call :func:`load_settings`
once and pass the result down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadcast.errors import ConfigError

ENV_PREFIX = "THREADCAST_"


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'threadcast.db'}"


class Settings(BaseSettings):
    """Every knob of threadcast; see README.md for the table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = Field(default_factory=_default_database_url)
    graph_url: str = "https://graph.microsoft.com"
    authority_host: str = "https://login.microsoftonline.com"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    ca_bundle: Path | None = None
    token_cache_key: SecretStr | None = None
    http_timeout: float = Field(default=30.0, gt=0, le=600)
    max_attempts: int = Field(default=5, ge=1, le=100)
    token_refresh_margin: float = Field(default=300.0, ge=0, le=3600)
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be sqlite:///PATH or postgresql://…")
        return value

    @field_validator("graph_url", "authority_host")
    @classmethod
    def _https(cls, value: str) -> str:
        # MSAL refuses non-https authorities and Graph tokens must never travel in clear.
        if not value.startswith("https://") or len(value) <= len("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("token_cache_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _build_fernet(value.get_secret_value())
        return value

    def require(self, *names: str) -> None:
        """Stop with a ConfigError naming the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} is required but not set")

    def as_env(self) -> dict[str, str]:
        """These settings as THREADCAST_* variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env

    def cache_cipher(self) -> MultiFernet:
        """The cipher for token caches: the first key encrypts, every key decrypts."""
        self.require("token_cache_key")
        assert self.token_cache_key is not None
        return _build_fernet(self.token_cache_key.get_secret_value())


def _build_fernet(keys: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise ValueError("must hold at least one key")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except ValueError:
        raise ValueError(
            "each comma-separated key must be 32 url-safe base64 bytes "
            "(make one with: threadcast genkey)"
        ) from None


_SECRETS = frozenset({"client_secret", "token_cache_key"})


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning pydantic's report into one line naming the variable."""
    try:
        return Settings(**overrides)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = "" if field in _SECRETS else f" (got {first.get('input')!r})"
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}: {message}{shown}") from None
