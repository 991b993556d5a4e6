"""Delegated access tokens from the shared encrypted MSAL cache (the worker's, and the producer's
for resolving audiences).

Rotation-safe refresh: a refresh token may be used once, so a refresh happens only under
the tenant's Redis lock, and only after re-reading the cache under that lock (another
process may just have refreshed), the ledger's copy first (it is written first, so it is
never older than Redis's). Access tokens are kept in-process until a margin before expiry;
MSAL's own rule (anything under 5 minutes left is expired) would otherwise refresh
short-lived tokens on every call.

An access token Graph refused (401) is marked refused in Redis for every process: the retry
of that delivery may run in another process, which must neither keep using its own copy of
the token nor pick it from the cache, or it would earn a second 401 and fail the delivery.
A process asks Redis about the token it holds at most once per REFUSAL_NOTICE_SECONDS (not
once per delivery), so the retry after a 401 waits that long: by then every process has
either asked again or never held the token.

What :meth:`TokenProvider.token` raises: SignInRequiredError (a person must sign in),
TokenCacheError (the stored cache is unreadable: wrong key, corrupt, foreign; or the app
registration was refused), and for what passes by itself BrokerError (Redis) or
IdentityError (the identity platform unreachable or failing): those leave the delivery to be
retried.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msal
import redis

from threadcast import endpoints, identity, metrics
from threadcast.constants import TOKEN_LOCK_KEY
from threadcast.errors import BrokerError, IdentityError, SignInRequiredError, TokenCacheError
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore

log = logging.getLogger("threadcast.tokens")

# Answers from the identity platform that no retry can fix: someone must sign in again.
_SIGN_IN_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})
# Answers that pass by themselves: the delivery is retried, nobody needs to act.
_PASSING_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_MIN_LOCK_SECONDS = 30.0  # a crashed holder frees the tenant after this long (or longer)
_REFUSED_MEMORY = 1000  # refused tokens remembered in-process before starting afresh
# The longest a process keeps using a held token without asking Redis whether another
# process saw Graph refuse it; a delivery refused with 401 is retried no sooner than this.
REFUSAL_NOTICE_SECONDS = 1.0
#: A thread waits for another process's refresh of the same tenant this much longer than
#: the refresh's own token call may take (THREADCAST_HTTP_TIMEOUT).
LOCK_WAIT_MARGIN = 5.0


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_on: float
    lifetime: float

    def usable(self, margin: float, now: float) -> bool:
        # Never keep a token for more than half its life past the margin: short-lived tokens
        # (a test tenant's 20 s) would otherwise be "expired" from the moment they arrive.
        return self.expires_on - min(margin, self.lifetime / 2) > now


class TokenProvider:
    def __init__(
        self,
        settings: Settings,
        store: TokenCacheStore,
        client: redis.Redis,
        http: httpx.Client,
        margin: float = 300.0,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (epoch seconds) judges expiry, ``monotonic`` the refusal notice period:
        tests pass their own to move time without sleeping."""
        self._settings = settings
        self._store = store
        self._redis = client
        self._http = http
        self._margin = margin
        self._clock = clock
        self._monotonic = monotonic
        self._tokens: dict[str, AccessToken] = {}
        self._refused: set[str] = set()  # access tokens Graph refused, known to this process
        # held token -> when (monotonic) Redis last said it was not refused
        self._asked: dict[str, float] = {}
        self._apps: dict[str, tuple[msal.ClientApplication, msal.SerializableTokenCache]] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}  # per tenant: one fetch at a time
        # Held through discovery and the token call, each up to the HTTP timeout: a lock that
        # expired mid-refresh would let a second process spend the same refresh token.
        self._lock_seconds = max(_MIN_LOCK_SECONDS, 2 * settings.http_timeout + 10)
        self.refreshes = 0  # token-endpoint refreshes done by this process

    def token(self, tenant: str) -> str:
        """A usable access token for ``tenant``; raises SignInRequiredError if none can be had."""
        held = self._held(tenant)
        if held is not None:
            return held
        # One thread of this process fetches a tenant's token; the others wait for it
        # (the tenant's MSAL cache object is shared, and a refresh costs a token call).
        with self._tenant_lock(tenant):
            held = self._held(tenant)
            if held is not None:
                return held
            self._tokens.pop(tenant, None)
            found = self._from_cache(tenant, self._clock()) or self._refresh(tenant)
            self._tokens[tenant] = found
            self._asked[found.value] = self._monotonic()  # just checked (cache) or just issued
            return found.value

    def _held(self, tenant: str) -> str | None:
        """The token in hand, if still usable and not refused as far as this process knows
        (Redis is asked about it at most once per REFUSAL_NOTICE_SECONDS)."""
        held = self._tokens.get(tenant)
        if held is None or not held.usable(self._margin, self._clock()):
            return None
        asked = self._monotonic()
        if asked - self._asked.get(held.value, -math.inf) < REFUSAL_NOTICE_SECONDS:
            return held.value  # asked Redis less than a notice period ago
        if self._is_refused(tenant, held.value):
            return None
        if len(self._asked) >= _REFUSED_MEMORY:
            self._asked.clear()
        self._asked[held.value] = asked
        return held.value

    def _tenant_lock(self, tenant: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tenant, threading.Lock())

    def at_hand(self, tenant: str) -> bool:
        """Whether :meth:`token` can answer without a refresh (from memory, or after one quick
        Redis look): no lock, no identity platform."""
        held = self._tokens.get(tenant)
        return held is not None and held.usable(self._margin, self._clock())

    def reject(self, tenant: str, token: str) -> None:
        """Graph refused ``token`` (401): no process uses it again, so the next call refreshes.

        Never raises: the 401 must still be recorded when Redis is down (other processes
        then learn of the refusal from their own 401).
        """
        if len(self._refused) >= _REFUSED_MEMORY:
            self._refused.clear()
        self._refused.add(token)
        self._asked.pop(token, None)
        if (held := self._tokens.get(tenant)) is not None and held.value == token:
            del self._tokens[tenant]
        try:
            self._store.mark_refused(tenant, token)
        except BrokerError as exc:
            log.warning("%s (the refused access token is dropped in this process only)", exc)

    def withdraw(self, tenant: str, token: str, reason: str) -> None:
        """Graph refused ``token`` for want of consent (403): the tenant needs a sign-in.

        The token is refused for every process (as after a 401), and the cache state it
        came from is marked dead, so the next process to look for a token raises
        SignInRequiredError instead of posting into another 403. A new sign-in stores a new
        state, to which the mark does not apply. Never raises (the 403 must be recorded)."""
        self.reject(tenant, token)
        try:
            text = self._store.load(tenant)
            if text is not None:
                self._store.mark_needs_sign_in(tenant, text, reason)
        except (BrokerError, TokenCacheError) as exc:
            log.warning("tenant %s: cannot mark it as needing a sign-in: %s", tenant, exc)

    def _good(self, tenant: str, token: AccessToken, now: float) -> bool:
        return token.usable(self._margin, now) and not self._is_refused(tenant, token.value)

    def _is_refused(self, tenant: str, token: str) -> bool:
        if token in self._refused:
            return True
        try:
            refused = self._store.refused(tenant, token)
        except BrokerError:
            # Unknown is taken as "not refused": at worst one more 401, never a delivery
            # stranded between its claim and its POST.
            return False
        if refused:
            self._refused.add(token)
        return refused

    def _from_cache(self, tenant: str, now: float) -> AccessToken | None:
        _, cache, _ = self._load(tenant)
        return self._cached_token(cache, tenant, now)

    def _refresh(self, tenant: str) -> AccessToken:
        lock = self._redis.lock(
            TOKEN_LOCK_KEY + tenant,
            timeout=self._lock_seconds,
            # A refresh takes a token call; a lock held longer is the tenant's trouble (its
            # deliveries wait and come back), not a reason to hold a thread for minutes.
            blocking_timeout=self._settings.http_timeout + LOCK_WAIT_MARGIN,
        )
        try:
            with lock:
                # The ledger first: Redis may hold an older state whose refresh token rotated.
                app, cache, text = self._load(tenant, ledger_first=True)
                found = self._cached_token(cache, tenant, self._clock())
                if found is not None:
                    return found  # another process refreshed while we waited
                dead = self._store.needs_sign_in(tenant, text)
                if dead is not None:
                    raise SignInRequiredError(tenant, dead)  # known dead: don't ask again
                return self._refresh_locked(tenant, app, cache, text)
        except redis.RedisError as exc:
            raise BrokerError(
                f"tenant {tenant}: cannot lock or read its token cache in Redis "
                f"({type(exc).__name__}); the delivery will be retried"
            ) from exc

    def _refresh_locked(
        self,
        tenant: str,
        app: msal.ClientApplication,
        cache: msal.SerializableTokenCache,
        text: str,
    ) -> AccessToken:
        accounts = app.get_accounts()
        if not accounts:
            raise SignInRequiredError(tenant, "no signed-in account in its token cache")
        try:
            result = app.acquire_token_silent_with_error(
                self._scopes(tenant, text), account=accounts[0], force_refresh=True
            )
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: an answer that is not JSON
            metrics.record_token_refresh(tenant, ok=False)
            raise _unreachable(self._settings, tenant, exc) from exc
        self.refreshes += 1
        try:
            token = _token_from_result(tenant, result, self._clock())
        except SignInRequiredError as exc:
            metrics.record_token_refresh(tenant, ok=False)
            self._store.mark_needs_sign_in(tenant, text, exc.reason)
            raise
        except (IdentityError, TokenCacheError):
            metrics.record_token_refresh(tenant, ok=False)
            raise
        metrics.record_token_refresh(tenant, ok=True)
        if cache.has_state_changed:
            self._store.save(tenant, cache.serialize())
        log.info("tenant %s: access token refreshed, valid for %.0f s", tenant, token.lifetime)
        return token

    def _load(
        self, tenant: str, *, ledger_first: bool = False
    ) -> tuple[msal.ClientApplication, msal.SerializableTokenCache, str]:
        text = self._store.load(tenant, ledger_first=ledger_first)
        if text is None:
            raise SignInRequiredError(tenant, "it has never signed in")
        with self._guard:
            if tenant not in self._apps:
                cache = msal.SerializableTokenCache()
                self._apps[tenant] = (self._new_app(tenant, cache), cache)
            app, cache = self._apps[tenant]
        cache.deserialize(text)
        return app, cache, text

    def _new_app(self, tenant: str, cache: msal.SerializableTokenCache) -> msal.ClientApplication:
        try:  # MSAL fetches the tenant's OpenID configuration here
            return identity.msal_app(self._settings, tenant, cache, self._http)
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: MSAL's discovery failures
            raise _unreachable(self._settings, tenant, exc) from exc

    def _scopes(self, tenant: str, text: str) -> list[str]:
        """What a refresh asks for: the Graph permissions the tenant's sign-in was granted
        (``threadcast login`` asked for the least its endpoint needs), else that least."""
        try:
            granted = endpoints.granted_scopes(json.loads(text), tenant)
        except ValueError:
            granted = []
        return granted or [endpoints.login_scope(self._settings.endpoint, None)]

    def _cached_token(
        self, cache: msal.SerializableTokenCache, tenant: str, now: float
    ) -> AccessToken | None:
        entries = cache.search(
            msal.TokenCache.CredentialType.ACCESS_TOKEN,
            query={"realm": tenant, "client_id": self._settings.client_id},
        )
        candidates: list[AccessToken] = []
        for entry in entries:
            if endpoints.GRAPH_SCOPES.isdisjoint(endpoints.scope_names(entry.get("target"))):
                continue  # an ID-only or foreign token: Graph would refuse it
            expires_on = float(entry["expires_on"])
            lifetime = expires_on - float(entry.get("cached_at", expires_on - 3600))
            candidates.append(AccessToken(entry["secret"], expires_on, lifetime))
        for found in sorted(candidates, key=lambda t: t.expires_on, reverse=True):
            if self._good(tenant, found, now):
                return found
        return None


def _token_from_result(tenant: str, result: dict[str, Any] | None, now: float) -> AccessToken:
    if result is None:
        raise SignInRequiredError(tenant, "no refresh token for its account")
    error = result.get("error")
    if error in _SIGN_IN_ERRORS:
        codes = result.get("error_codes") or []
        raise SignInRequiredError(tenant, f"{error} {codes}".strip())
    codes = result.get("error_codes") or []
    if error in _PASSING_ERRORS:
        raise IdentityError(
            f"tenant {tenant}: the identity platform could not refresh its token just now "
            f"({error} {codes}); its deliveries will be retried"
        )
    if error:  # invalid_client, unauthorized_client…: the app registration's settings
        raise TokenCacheError(
            tenant,
            f"the identity platform refused its refresh ({error} {codes}): check "
            f"THREADCAST_CLIENT_ID and THREADCAST_CLIENT_SECRET, then threadcast login "
            f"--tenant {tenant}",
        )
    lifetime = float(result.get("expires_in", 3600))
    return AccessToken(result["access_token"], now + lifetime, lifetime)


def _unreachable(settings: Settings, tenant: str, exc: Exception) -> IdentityError:
    where = identity.authority(settings, tenant)
    return IdentityError(
        f"tenant {tenant}: the identity platform at {where} could not be reached or refused "
        f"discovery ({type(exc).__name__}); its deliveries will be retried"
    )
