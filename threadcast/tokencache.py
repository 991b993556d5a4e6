"""Each tenant's MSAL token cache: encrypted in Redis, written through to the ledger.

Redis holds the working copy every worker reads; the ledger holds the same ciphertext so a
flushed or failed-over Redis does not force every tenant to sign in again. The plaintext is
wrapped in an envelope naming its tenant and client id before encryption, so a cache copied
to the wrong key, or made for another app registration, is refused instead of used.

A tenant whose refresh was refused (``invalid_grant``…) is marked with the hash of the cache
state that failed: every process then knows that state is dead without asking the identity
platform again, and a new sign-in (a new state) clears the mark by itself. Likewise an access
token Graph refused (401) is marked by its hash, so no process uses it again.

The ledger copy is written first, so when the two copies differ the ledger's is the newer one
(a Redis write failed after it): a refresh reads it first, because refreshing with an older
state would present a refresh token that has already rotated out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from cryptography.fernet import InvalidToken, MultiFernet
from redis.exceptions import LockError
from redis.lock import Lock

from threadcast.constants import (
    REFUSED_TOKEN_KEY,
    SIGN_IN_MARK_KEY,
    TOKEN_CACHE_KEY,
    TOKEN_LOCK_KEY,
)
from threadcast.contract import Target
from threadcast.errors import BrokerError, ConfigError, TokenCacheError, ValidationError
from threadcast.ledger import TokenCacheRows
from threadcast.settings import Settings

# + tenant + ":" + sha256(access token) -> "1": Graph refused that token (401).
# Longer than any access token lives (CAE tokens: up to 28 h); a refused token that has
# expired is never picked again anyway.
_REFUSED_TTL_SECONDS = 30 * 3600


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

    def load(self, tenant: str, *, ledger_first: bool = False) -> str | None:
        """The tenant's serialized MSAL cache, or None when it never signed in.

        A damaged Redis copy is replaced by the ledger's when that one is good. With
        ``ledger_first`` (before a refresh, under the tenant's lock) the ledger's copy wins
        whenever it is good, and a Redis copy that differs from it is replaced.
        """
        if ledger_first:
            found = self._load_ledger_first(tenant)
            if found is not None:
                return found
        cached = _call(self._redis.get, TOKEN_CACHE_KEY + tenant, tenant=tenant)
        if cached is not None:
            try:
                return self._open(tenant, cached.decode())
            except TokenCacheError:
                durable = self._rows.load(tenant)
                if durable is None or durable == cached.decode():
                    raise
        else:
            durable = self._rows.load(tenant)
            if durable is None:
                return None
        opened = self._open(tenant, durable)
        # heal Redis from the ledger
        _call(self._redis.set, TOKEN_CACHE_KEY + tenant, durable, tenant=tenant)
        return opened

    def _load_ledger_first(self, tenant: str) -> str | None:
        durable = self._rows.load(tenant)
        if durable is None:
            return None
        try:
            opened = self._open(tenant, durable)
        except TokenCacheError:
            return None  # a damaged ledger copy: the Redis copy may still be good
        cached = _call(self._redis.get, TOKEN_CACHE_KEY + tenant, tenant=tenant)
        if cached is None or cached.decode() != durable:
            _call(self._redis.set, TOKEN_CACHE_KEY + tenant, durable, tenant=tenant)
        return opened

    def save(self, tenant: str, cache_text: str) -> None:
        """Store a new cache state (never an empty one: that would lose the sign-in)."""
        if not cache_text or cache_text.strip() in ("", "{}"):
            raise TokenCacheError(tenant, "refusing to overwrite the cache with an empty one")
        envelope = json.dumps({"tenant": tenant, "client_id": self._client_id, "cache": cache_text})
        blob = self._cipher.encrypt(envelope.encode()).decode()
        # The ledger first: if Redis then fails, the durable copy already holds the new
        # (rotated) refresh token, and the next refresh reads it from there.
        self._rows.save(tenant, blob, datetime.now(UTC))
        _call(self._redis.set, TOKEN_CACHE_KEY + tenant, blob, tenant=tenant)

    def delete(self, tenant: str) -> None:
        self._rows.delete(tenant)
        _call(
            self._redis.delete, TOKEN_CACHE_KEY + tenant, SIGN_IN_MARK_KEY + tenant, tenant=tenant
        )

    def tenants(self) -> list[str]:
        return sorted(self._rows.tenants())

    def mark_needs_sign_in(self, tenant: str, cache_text: str, reason: str) -> None:
        mark = json.dumps({"state": _digest(cache_text), "reason": reason})
        _call(self._redis.set, SIGN_IN_MARK_KEY + tenant, mark, tenant=tenant)

    def needs_sign_in(self, tenant: str, cache_text: str) -> str | None:
        """The reason this very cache state can no longer refresh, if a process found one."""
        raw = _call(self._redis.get, SIGN_IN_MARK_KEY + tenant, tenant=tenant)
        if raw is None:
            return None
        mark = json.loads(raw)
        return str(mark["reason"]) if mark.get("state") == _digest(cache_text) else None

    def mark_refused(self, tenant: str, access_token: str) -> None:
        """Graph refused this access token (401): no process may use it again."""
        key = f"{REFUSED_TOKEN_KEY}{tenant}:{_digest(access_token)}"
        _call(lambda: self._redis.set(key, "1", ex=_REFUSED_TTL_SECONDS), tenant=tenant)

    def refused(self, tenant: str, access_token: str) -> bool:
        key = f"{REFUSED_TOKEN_KEY}{tenant}:{_digest(access_token)}"
        return bool(_call(self._redis.exists, key, tenant=tenant))

    def verify_key(self) -> None:
        """Fail at start-up, not per delivery, when the key opens none of the stored caches,
        or when those it opens were all made for another THREADCAST_CLIENT_ID (every token
        refresh would fail, and every delivery wait for a sign-in)."""
        tenants = self._rows.tenants()
        opened = False
        made_for: set[str] = set()
        for tenant in tenants:
            opens, client_id = self._made_for(tenant)
            if client_id == self._client_id:
                return
            opened = opened or opens
            if client_id is not None:
                made_for.add(client_id)
        if made_for:
            found = ", ".join(repr(c) for c in sorted(made_for)[:3])
            raise ConfigError(
                f"THREADCAST_CLIENT_ID is {self._client_id!r}, but the stored token caches "
                f"({len(tenants)} tenants) were made for {found}: set it to the app "
                "registration the tenants signed in with, or sign them in again"
            )
        if tenants and not opened:
            raise ConfigError(
                "THREADCAST_TOKEN_CACHE_KEY opens none of the stored token caches "
                f"({len(tenants)} tenants): it is not the key they were written with; "
                "list the old key after the new one to rotate"
            )

    def _made_for(self, tenant: str) -> tuple[bool, str | None]:
        """Whether the key opens the tenant's ledger copy, and the client id it was made for
        (None when it does not open, or holds no readable envelope)."""
        try:
            plain = self._cipher.decrypt((self._rows.load(tenant) or "").encode())
        except InvalidToken:
            return False, None
        try:
            envelope = json.loads(plain)
        except ValueError:
            return True, None
        client_id = envelope.get("client_id") if isinstance(envelope, dict) else None
        return True, client_id if isinstance(client_id, str) else None

    def rekey(self, tenant: str, wait: float) -> list[str]:
        """Re-encrypt the tenant's ledger and Redis copies under the first key, so the other
        keys can be dropped. Returns the copies ("ledger", "redis") no key opens: those are
        left as they are.

        Under the tenant's refresh lock, as a worker refreshes (threadcast/tokens.py): a refresh
        rotating the cache meanwhile would otherwise be overwritten by the older state
        re-encrypted. ``threadcast login`` writes without that lock: a sign-in during a
        rekey may be lost (sign in again). ``wait``: seconds to wait for a refresh holding
        the lock.
        """
        lock = self._redis.lock(TOKEN_LOCK_KEY + tenant, timeout=wait, blocking_timeout=wait)
        if not _call(lock.acquire, tenant=tenant):
            taken = f"its refresh lock stayed taken for {wait:.0f} s; run threadcast rekey again"
            raise TokenCacheError(tenant, taken)
        try:
            return self._rekey_locked(tenant)
        finally:
            _call(_release, lock, tenant=tenant)

    def _rekey_locked(self, tenant: str) -> list[str]:
        unreadable: list[str] = []
        durable = self._rows.load(tenant)
        rotated = None if durable is None else self._rotate(durable)
        if rotated is not None:
            self._rows.save(tenant, rotated, datetime.now(UTC))  # the ledger first, as save()
        elif durable is not None:
            unreadable.append("ledger")
        cached = _call(self._redis.get, TOKEN_CACHE_KEY + tenant, tenant=tenant)
        if cached is None:
            return unreadable  # load() copies the ledger's back when it is needed
        # The same state as the ledger's stays byte for byte the same (load compares them).
        fresh = rotated if cached.decode() == durable else self._rotate(cached.decode())
        if fresh is None:
            unreadable.append("redis")
        else:
            _call(self._redis.set, TOKEN_CACHE_KEY + tenant, fresh, tenant=tenant)
        return unreadable

    def _rotate(self, blob: str) -> str | None:
        try:
            return self._cipher.rotate(blob.encode()).decode()
        except InvalidToken:
            return None

    def _open(self, tenant: str, blob: str) -> str:
        try:
            envelope = json.loads(self._cipher.decrypt(blob.encode()))
        except InvalidToken:
            raise TokenCacheError(
                tenant,
                "cannot be decrypted with THREADCAST_TOKEN_CACHE_KEY (written with another key, "
                f"or damaged): sign in again with threadcast login --tenant {tenant}",
            ) from None
        except ValueError:
            raise TokenCacheError(
                tenant, f"is corrupt: sign in again with threadcast login --tenant {tenant}"
            ) from None
        if not isinstance(envelope, dict) or envelope.get("tenant") != tenant:
            raise TokenCacheError(
                tenant, f"belongs to another tenant: threadcast login --tenant {tenant}"
            )
        if envelope.get("client_id") != self._client_id:
            raise TokenCacheError(
                tenant,
                f"was made for client id {envelope.get('client_id')!r}, not THREADCAST_CLIENT_ID: "
                f"threadcast login --tenant {tenant}",
            )
        return str(envelope["cache"])


def signed_in(client: redis.Redis, rows: TokenCacheRows, tenant: str) -> bool:
    """Whether a token cache exists for the tenant; needs neither the key nor the client id."""
    if _call(client.exists, TOKEN_CACHE_KEY + tenant, tenant=tenant):
        return True
    return rows.load(tenant) is not None


def require_signed_in(client: redis.Redis, rows: TokenCacheRows, targets: Iterable[Target]) -> None:
    """Refuse targets whose tenant never signed in, naming the first such target."""
    checked: set[str] = set()
    for index, target in enumerate(targets):
        if target.tenant not in checked and not signed_in(client, rows, target.tenant):
            raise ValidationError(
                f"targets[{index}].tenant",
                target.tenant,
                "has never signed in: run threadcast login --tenant " + target.tenant,
            )
        checked.add(target.tenant)


def _release(lock: Lock) -> None:
    with contextlib.suppress(LockError):  # it expired meanwhile: nothing left to free
        lock.release()


def _digest(cache_text: str) -> str:
    return hashlib.sha256(cache_text.encode()).hexdigest()


def _call(method: Callable[..., Any], *args: Any, tenant: str) -> Any:
    """Run one Redis command, translating its failure into an operator-readable BrokerError."""
    try:
        return method(*args)
    except redis.RedisError as exc:
        raise BrokerError(
            f"tenant {tenant}: Redis is unreachable while using its token cache "
            f"({type(exc).__name__}): check THREADCAST_REDIS_URL; its deliveries stay in the "
            "ledger and will be retried, and its token cache is left as it was"
        ) from exc
