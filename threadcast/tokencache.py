"""Each tenant's MSAL token cache: encrypted in Redis, written through to the ledger.

Redis holds the working copy every worker reads; the ledger holds the same ciphertext so a
flushed or failed-over Redis does not force every tenant to sign in again. The plaintext is
wrapped in an envelope naming its tenant and client id before encryption, so a cache copied
to the wrong key, or made for another app registration, is refused instead of used.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis
from cryptography.fernet import InvalidToken, MultiFernet

from threadcast.constants import TOKEN_CACHE_KEY
from threadcast.errors import BrokerError, TokenCacheError
from threadcast.ledger import TokenCacheRows
from threadcast.settings import Settings


class TokenCacheStore:
    def __init__(
        self, client: redis.Redis, rows: TokenCacheRows, cipher: MultiFernet, client_id: str
    ) -> None:
        self._redis = client
        self._rows = rows
        self._cipher = cipher
        self._client_id = client_id

    @classmethod
    def for_settings(
        cls, settings: Settings, client: redis.Redis, rows: TokenCacheRows
    ) -> TokenCacheStore:
        """The store as configured: needs THREADCAST_CLIENT_ID and THREADCAST_TOKEN_CACHE_KEY."""
        settings.require("client_id", "token_cache_key")
        assert settings.client_id is not None
        return cls(client, rows, settings.cache_cipher(), settings.client_id)

    def load(self, tenant: str) -> str | None:
        """The tenant's serialized MSAL cache, or None when it never signed in."""
        blob = self._redis_get(tenant)
        if blob is None:
            blob = self._rows.load(tenant)
            if blob is None:
                return None
            self._redis_set(tenant, blob)  # heal Redis from the durable copy
        return self._open(tenant, blob)

    def save(self, tenant: str, cache_text: str) -> None:
        """Store a new cache state (never an empty one: that would lose the sign-in)."""
        if not cache_text or cache_text.strip() in ("", "{}"):
            raise TokenCacheError(tenant, "refusing to overwrite the cache with an empty one")
        envelope = json.dumps({"tenant": tenant, "client_id": self._client_id, "cache": cache_text})
        blob = self._cipher.encrypt(envelope.encode()).decode()
        self._rows.save(tenant, blob, datetime.now(UTC))
        self._redis_set(tenant, blob)

    def delete(self, tenant: str) -> None:
        self._rows.delete(tenant)
        try:
            self._redis.delete(TOKEN_CACHE_KEY + tenant)
        except redis.RedisError as exc:
            raise _unreachable(exc) from exc

    def tenants(self) -> list[str]:
        return sorted(self._rows.tenants())

    def _open(self, tenant: str, blob: str) -> str:
        try:
            envelope = json.loads(self._cipher.decrypt(blob.encode()))
        except InvalidToken:
            raise TokenCacheError(
                tenant,
                "cannot be decrypted with THREADCAST_TOKEN_CACHE_KEY (written with another key?); "
                "add the old key after the new one in THREADCAST_TOKEN_CACHE_KEY, or sign in again",
            ) from None
        except ValueError:
            raise TokenCacheError(tenant, "is corrupt; sign in again") from None
        if not isinstance(envelope, dict) or envelope.get("tenant") != tenant:
            raise TokenCacheError(tenant, "belongs to another tenant; sign in again")
        if envelope.get("client_id") != self._client_id:
            raise TokenCacheError(
                tenant, "was made for another client id (THREADCAST_CLIENT_ID); sign in again"
            )
        return str(envelope["cache"])

    def _redis_get(self, tenant: str) -> str | None:
        try:
            value = self._redis.get(TOKEN_CACHE_KEY + tenant)
        except redis.RedisError as exc:
            raise _unreachable(exc) from exc
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    def _redis_set(self, tenant: str, blob: str) -> None:
        try:
            self._redis.set(TOKEN_CACHE_KEY + tenant, blob)
        except redis.RedisError as exc:
            raise _unreachable(exc) from exc


def signed_in(client: redis.Redis, rows: TokenCacheRows, tenant: str) -> bool:
    """Whether a token cache exists for the tenant; needs neither the key nor the client id."""
    try:
        if client.exists(TOKEN_CACHE_KEY + tenant):
            return True
    except redis.RedisError as exc:
        raise _unreachable(exc) from exc
    return rows.load(tenant) is not None


def _unreachable(exc: redis.RedisError) -> BrokerError:
    return BrokerError(f"Redis is unreachable ({type(exc).__name__}); check THREADCAST_REDIS_URL")
