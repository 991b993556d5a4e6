"""Configuration: one ``Settings`` object read from ``THREADCAST_*`` variables and ``.env``.

Nothing reads the environment at import time; entry points call :func:`load_settings`
once and pass the result down.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import pydantic
from cryptography.fernet import Fernet, MultiFernet
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from threadcast.apikeys import parse_api_keys
from threadcast.constants import LEASE_MARGIN_SECONDS, MAX_BATCH
from threadcast.errors import ConfigError
from threadcast.webhooks import WebhookEndpoint, parse_webhooks

ENV_PREFIX = "THREADCAST_"


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'threadcast.db'}"


class TenantLimits(BaseModel):
    """Per-tenant overrides (``THREADCAST_TENANT_LIMITS`` is a JSON object tenant -> these).
    Zero holds the tenant's deliveries (it never spins); unset fields take the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_rps: int | None = Field(default=None, ge=0)
    team_rps: int | None = Field(default=None, ge=0)
    channel_daily: int | None = Field(default=None, ge=0)
    channel_rps: int | None = Field(default=None, ge=0)


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
    # Posts one `threadcast worker` may have in flight at once, at most (its processes share
    # it): each thread holds a batch (THREADCAST_BATCH_SIZE) whose posts are in flight
    # together. How many are really in flight follows from the permits the gate gives and
    # Graph's answer time (Little's law: 500 posts/s answered in 250 ms are 125 in flight);
    # this only caps it.
    max_in_flight: int = Field(default=1024, ge=1, le=8192)
    # Worker threads (each a Celery message, i.e. a batch, at a time); unset: enough for
    # THREADCAST_MAX_IN_FLIGHT.
    worker_concurrency: int | None = Field(default=None, ge=1, le=1024)
    # Worker processes `threadcast worker` runs (each its threads and in-flight cap): one
    # process's Python is bound at about one CPU. Unset: one per CPU.
    worker_processes: int | None = Field(default=None, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Scheduling (docs/SCHEDULING.md): how late a due broadcast or occurrence may still be
    # sent, and the scheduler's leader lease (a dead leader is replaced within about this).
    schedule_grace: int = Field(default=900, ge=0, le=7 * 86400)
    scheduler_lease_seconds: float = Field(default=5.0, ge=1, le=60)
    # HTTP API, metrics and logs: docs/API.md and docs/OPERATIONS.md.
    api_keys: SecretStr | None = None  # name:key,name:sha256:<hex>; see threadcast.apikeys
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    api_max_targets: int = Field(default=5000, ge=1, le=1_000_000)
    log_json: bool = False
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    task_events: bool = False  # Celery task events, for Flower
    # Rate limits (the documented Microsoft Teams limits); see docs/RATE_LIMITS.md.
    app_rps: int = Field(default=500, gt=0, le=100_000)
    tenant_rps: int = Field(default=50, gt=0, le=100_000)
    team_rps: int = Field(default=4, gt=0, le=100_000)
    channel_rps: int = Field(default=1, gt=0, le=100_000)  # per app, per tenant, per channel
    channel_daily: int = Field(default=3000, gt=0, le=10_000_000)
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict)
    limit_guard_ms: float = Field(default=20.0, ge=0, le=1000)
    retry_after_cap: float = Field(default=300.0, gt=0, le=86_400)
    # Deliveries released to the workers and not yet taken, at most; unset: 100 ms of the
    # app's permits, at least 64 and at most THREADCAST_MAX_IN_FLIGHT (dispatch_room).
    dispatch_backlog: int | None = Field(default=None, ge=1, le=100_000)
    # Deliveries per Celery message: a worker process takes them in turn, one claim at a
    # time, so a batch amortises Celery's per-message cost without widening what a killed
    # worker leaves unknown (docs/PERFORMANCE.md).
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH)
    # Written by a worker once it consumes (for supervisors, the demo and tests).
    worker_ready_file: Path | None = None
    # Delivery guarantees (docs/RELIABILITY.md): what a post with no answer becomes.
    ambiguous: Literal["unknown", "retry"] = "unknown"
    # The scheduler re-queues waiting deliveries Redis lost once they are this old (seconds),
    # and released ones no worker took (a worker killed with them prefetched) after the second.
    orphan_grace: float = Field(default=60.0, ge=0, le=86_400)
    orphan_released_grace: float = Field(default=300.0, ge=1, le=86_400)
    # A claim's lease is the HTTP timeout plus this: a delivery still ``sending`` after it lost
    # its worker mid-attempt, and the lease sweep makes it ``unknown``.
    lease_margin: float = Field(default=LEASE_MARGIN_SECONDS, ge=1, le=3600)
    # Which Graph endpoint posts (threadcast.endpoints): auto tries the seed's beta
    # chatthreads and switches the deployment to v1.0 channel messages once Graph proves the
    # beta segment gone; chatthreads or channel-messages pin one.
    endpoint: Literal["auto", "chatthreads", "channel-messages"] = "auto"
    # Audiences (threadcast send --audience): `threadcast login` then also asks for
    # Team.ReadBasic.All and Channel.ReadBasic.All, which resolving them through Graph reads.
    audiences: bool = False
    # Edits and recalls (threadcast edit / recall): `threadcast login` then also asks for
    # ChannelMessage.ReadWrite, which PATCH and softDelete of a channel message need. Their
    # own Graph limits (message edits per second, per app and per tenant) bound them; the
    # team's and channel's per-second limits are shared with the posts.
    changes: bool = False
    edit_app_rps: int = Field(default=300, gt=0, le=100_000)
    edit_tenant_rps: int = Field(default=30, gt=0, le=100_000)
    # Signed webhook events (docs/WEBHOOKS.md): a JSON list of {url, secret, events, name?};
    # a secret as a whole, since it holds the endpoints' signing secrets.
    webhooks: SecretStr | None = None

    @field_validator("tenant_limits")
    @classmethod
    def _tenant_guids(cls, value: dict[str, TenantLimits]) -> dict[str, TenantLimits]:
        from threadcast.errors import ValidationError
        from threadcast.ids import guid

        try:
            return {guid("tenant", tenant): limits for tenant, limits in value.items()}
        except ValidationError as exc:
            raise ValueError(f"keys must be tenant GUIDs: {exc}") from None

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

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhooks(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_webhooks(value.get_secret_value())
        return value

    @property
    def webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]:
        """THREADCAST_WEBHOOKS parsed (checked when the settings were read); none if unset."""
        if self.webhooks is None:
            return ()
        return parse_webhooks(self.webhooks.get_secret_value())

    @property
    def worker_threads(self) -> int:
        """Threads a worker process runs: each takes one Celery message (a batch) at a time."""
        if self.worker_concurrency is not None:
            return self.worker_concurrency
        return -(-self.max_in_flight // self.batch_size)

    @property
    def dispatch_room(self) -> int:
        """Deliveries the dispatcher keeps released and not yet taken: enough for the workers
        to find work the moment a place frees, scaling with the permits the gate gives."""
        if self.dispatch_backlog is not None:
            return self.dispatch_backlog
        per_second = self.app_rps / (1.0 + self.limit_guard_ms / 1000.0)
        return max(64, min(self.max_in_flight, math.ceil(per_second * 0.1)))

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


_SECRETS = frozenset({"client_secret", "token_cache_key", "api_keys", "webhooks"})
# A URL's password (scheme://user:password@host, up to the last "@": a password may hold
# one) and a password=… query parameter: an error shows the value it refused, never these.
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):\S*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&;]password=)[^&;#\s]*")


def _masked(value: object) -> object:
    if not isinstance(value, str):
        return value
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", value))


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning pydantic's report into one line naming the variable."""
    try:
        return Settings(**overrides)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        shown = "" if field in _SECRETS else f" (got {_masked(first.get('input'))!r})"
        sep = "" if message.startswith(("[", ":")) else ": "  # e.g. THREADCAST_WEBHOOKS[1].url
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}{sep}{message}{shown}") from None
