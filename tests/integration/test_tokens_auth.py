"""Delegated tokens as the worker meets them: a refused token, a dead sign-in, a confidential
client, a cache that is not ours, and Redis failing in the middle of a refresh.

Real workers, real Redis, the real simulator over HTTPS, real MSAL: a 401 comes from the
simulator refusing the access tokens it issued (``revoke?access_tokens_only=true``: the
refresh token stays good) or from a revoked sign-in (``revoke``: the refresh token dies too).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import text

from producer import devredis
from producer.accounts import list_accounts
from producer.processes import start_worker
from producer.signin import sign_in
from simulator.process import RunningSimulator
from tests.integration.conftest import Stack, settings_from, stack_env
from tests.integration.stack import SimAdmin
from tests.integration.tokentools import (
    Row,
    assert_posted_once,
    history,
    leaks,
    ledger_texts,
    new_tenant,
    redis_texts,
    send,
    states,
    wait_settled,
)
from threadcast import identity
from threadcast.constants import TOKEN_CACHE_KEY
from threadcast.contract import ContentType
from threadcast.errors import BrokerError, IdentityError
from threadcast.ledger import Ledger
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore
from threadcast.tokens import REFUSAL_NOTICE_SECONDS, TokenProvider
from worker.graph import chatthread_body, chatthreads_url

CLIENT_SECRET = "tc-secret-" + "q7Zr2mXw9vLp4sKd"


def login_hint(tenant: str) -> str:
    return f"threadcast login --tenant {tenant}"


# --- 401 from Graph ------------------------------------------------------------------------


def retry_wait(ledger: Ledger, delivery_id: str) -> float:
    """Seconds between the first attempt's answer and the second attempt's start."""
    query = text(
        "SELECT started_at, finished_at FROM attempts WHERE delivery_id = :d ORDER BY number"
    )
    with ledger.engine.connect() as conn:
        (_, first_answered), (second_started, _) = conn.execute(query, {"d": delivery_id}).all()
    return float((_utc(second_started) - _utc(first_answered)).total_seconds())


def _utc(value: datetime | str) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("sqlite")
def test_a_401_drops_the_token_refreshes_once_and_retries_once(stack: Stack) -> None:
    tenant = new_tenant(stack.settings)
    warm = send(stack.settings, [tenant], 4, "warm")
    assert states(wait_settled(stack.ledger, warm)) == {"sent": 4}  # processes hold the token
    for _ in range(3):
        # One delivery: its retry may run in a process that still holds the refused token.
        before = stack.sim.token_calls(tenant)
        stack.sim.revoke(tenant, access_tokens_only=True)  # Graph refuses; the sign-in lives
        one = send(stack.settings, [tenant], 1, "one401")
        (row,) = wait_settled(stack.ledger, one)
        assert (row.state, row.attempts, history(stack.ledger, row.id)) == ("sent", 2, [401, 204])
        # The retry waited until every process had heard of the refusal.
        assert retry_wait(stack.ledger, row.id) >= REFUSAL_NOTICE_SECONDS
        after = stack.sim.token_calls(tenant)
        assert after["refresh_token"] == before["refresh_token"] + 1
        assert after["invalid_grant"] == 0
        assert_posted_once(stack.sim, one)

    before = stack.sim.token_calls(tenant)
    stack.sim.revoke(tenant, access_tokens_only=True)
    sent = send(stack.settings, [tenant], 10, "after401")
    found = wait_settled(stack.ledger, sent)

    assert states(found) == {"sent": 10}
    histories = {row.id: history(stack.ledger, row.id) for row in found}
    assert all(h in ([204], [401, 204]) for h in histories.values()), histories
    assert [401, 204] in histories.values()  # the first post after the revoke met the 401
    assert all(row.attempts == len(histories[row.id]) for row in found)
    after = stack.sim.token_calls(tenant)
    # One refresh for every process and delivery that met the 401: the refusal is shared.
    assert after["refresh_token"] == before["refresh_token"] + 1
    assert after["invalid_grant"] == 0
    assert_posted_once(stack.sim, sent)


def test_a_refused_token_is_used_by_no_process_and_refreshed_by_one(
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    redis_url: str,
    clean_redis: redis.Redis,
    cache_key: str,
    tmp_path: Path,
) -> None:
    """Three worker processes' providers: the retry after a 401 may run in any of them."""
    settings = settings_from(
        stack_env(sim, redis_url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    )
    tenant = new_tenant(settings)
    ledger = Ledger.open(settings.database_url)
    monotonic = SteppedClock(time.monotonic())
    first, second, third = (
        provider(settings, ledger, redis.Redis.from_url(redis_url), monotonic=monotonic)
        for _ in range(3)
    )
    token = first.token(tenant)
    assert second.token(tenant) == token  # both hold it in-process now
    sim_admin.revoke(tenant, access_tokens_only=True)
    before = sim_admin.token_calls(tenant)

    first.reject(tenant, token)  # first met the 401
    # A refused delivery is retried REFUSAL_NOTICE_SECONDS later (worker/deliver.py): by then
    # every process has asked Redis about the token it holds again.
    monotonic.advance(REFUSAL_NOTICE_SECONDS)
    fresh = second.token(tenant)  # second still holds the refused token: it must not use it
    assert fresh != token and post(sim, fresh) == 204
    assert third.token(tenant) == fresh  # from the cache, not refused, not refreshed again
    assert first.token(tenant) == fresh
    after = sim_admin.token_calls(tenant)
    assert after["refresh_token"] == before["refresh_token"] + 1
    assert after["invalid_grant"] == 0
    ledger.close()


def test_a_401_whose_refresh_is_refused_waits_for_login_not_failed(stack: Stack) -> None:
    tenant = new_tenant(stack.settings)
    warm = send(stack.settings, [tenant], 2, "warm")
    assert states(wait_settled(stack.ledger, warm)) == {"sent": 2}
    before = stack.sim.token_calls(tenant)

    stack.sim.revoke(tenant)  # the sign-in is dead: a 401, then invalid_grant on refresh
    sent = send(stack.settings, [tenant], 5, "dead")
    found = wait_settled(stack.ledger, sent)

    assert states(found) == {"waiting_auth": 5}  # neither failed nor retried forever
    for row in found:
        # At most the one 401; a None is a claim given up before any request (the sign-in
        # died between the check before claiming and the POST).
        assert requests(stack.ledger, row.id) in ([], [401])
        assert row.error_code == "sign_in_required"
        assert login_hint(tenant) in (row.error_message or "")
    after = stack.sim.token_calls(tenant)
    # One process asked and marked the sign-in dead; every other one believed the mark.
    assert after["refresh_token"] == before["refresh_token"] + 1
    assert after["invalid_grant"] == 1
    account = {a.tenant: a for a in list_accounts(stack.settings)}[tenant]
    assert account.state == "needs sign-in" and account.waiting == 5

    _, resumed = sign_in(stack.settings, tenant, lambda _t: None)
    assert resumed == 5
    found = wait_settled(stack.ledger, sent)
    assert states(found) == {"sent": 5}
    for row in found:
        assert requests(stack.ledger, row.id) in ([204], [401, 204])
    assert_posted_once(stack.sim, sent)
    assert stack.sim.token_calls(tenant)["invalid_grant"] == 1


def requests(ledger: Ledger, delivery_id: str) -> list[int | None]:
    """The statuses of the attempts that made a request."""
    return [status for status in history(ledger, delivery_id) if status is not None]


# --- a cache that is not ours --------------------------------------------------------------

DAMAGES = {
    "corrupt": "cannot be decrypted",
    "other_key": "cannot be decrypted",
    "other_client_id": "was made for client id",
    "other_tenant": "belongs to another tenant",
}


def damage_cache(stack: Stack, bad: str, good: str, damage: str) -> str:
    """Leave both copies (Redis and ledger) of the bad tenant's cache as ``damage`` says, so
    there is no good copy to heal from; return the stored ciphertext."""
    assert stack.settings.client_id is not None
    own = stack.ledger.token_caches.load(bad)
    other = stack.ledger.token_caches.load(good)
    assert own is not None and other is not None
    if damage in ("corrupt", "other_tenant"):
        blob = own[: len(own) // 2] if damage == "corrupt" else other  # a torn write; a mix-up
        stack.redis.set(TOKEN_CACHE_KEY + bad, blob)
        stack.ledger.token_caches.save(bad, blob, datetime.now(UTC))
        return blob
    plain = TokenCacheStore.for_settings(
        stack.settings, stack.redis, stack.ledger.token_caches
    ).load(bad)
    assert plain is not None
    cipher, client_id = stack.settings.cache_cipher(), stack.settings.client_id
    if damage == "other_key":
        cipher = MultiFernet([Fernet(Fernet.generate_key())])
    else:
        client_id = str(uuid.uuid4())  # another app registration's cache
    TokenCacheStore(stack.redis, stack.ledger.token_caches, cipher, client_id).save(bad, plain)
    stored = stack.ledger.token_caches.load(bad)
    assert stored is not None
    return stored


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("postgresql")
def test_caches_that_are_not_ours_wait_for_login_and_spare_the_others(stack: Stack) -> None:
    """One tenant per kind of damage, in both copies (nothing to heal from), and a healthy
    tenant in the same broadcast."""
    good = stack.tenants[0]
    bad = {damage: new_tenant(stack.settings) for damage in DAMAGES}
    blobs = {damage: damage_cache(stack, tenant, good, damage) for damage, tenant in bad.items()}
    before = {tenant: stack.sim.token_calls(tenant) for tenant in bad.values()}

    sent = send(stack.settings, [good, *bad.values()], 3, "damaged")
    found = wait_settled(stack.ledger, sent)

    assert states([r for r in found if r.tenant == good]) == {"sent": 3}
    accounts = {a.tenant: a for a in list_accounts(stack.settings)}
    for damage, tenant in bad.items():
        waiting: list[Row] = [r for r in found if r.tenant == tenant]
        assert states(waiting) == {"waiting_auth": 3}, damage
        for row in waiting:
            assert row.attempts == 0, damage  # no request went out with a cache we distrust
            message = row.error_message or ""
            assert f"tenant {tenant}" in message and login_hint(tenant) in message, message
            assert DAMAGES[damage] in message, message
        # Left exactly as found: never replaced, never emptied, no token call for it.
        assert stack.redis.get(TOKEN_CACHE_KEY + tenant) == blobs[damage].encode(), damage
        assert stack.ledger.token_caches.load(tenant) == blobs[damage], damage
        assert stack.sim.token_calls(tenant) == before[tenant], damage
        account = accounts[tenant]
        assert (account.state, account.waiting) == ("unreadable", 3), damage
        assert login_hint(tenant) in (account.reason or ""), damage

    for tenant in bad.values():
        _, resumed = sign_in(stack.settings, tenant, lambda _t: None)
        assert resumed == 3
    assert states(wait_settled(stack.ledger, sent)) == {"sent": 3 * (1 + len(bad))}
    assert_posted_once(stack.sim, sent)


# --- a confidential client -----------------------------------------------------------------


@pytest.fixture
def confidential(
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    redis_url: str,
    clean_redis: redis.Redis,
    cache_key: str,
    tmp_path: Path,
) -> Iterator[Stack]:
    """A worker of an app registration with a client secret (its own Redis db and ledger)."""
    env = stack_env(sim, redis_url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    env |= {"THREADCAST_CLIENT_SECRET": CLIENT_SECRET, "THREADCAST_LOG_LEVEL": "DEBUG"}
    settings = settings_from(env)
    tenant = new_tenant(settings)  # the device-code flow, run as the confidential client
    worker = start_worker(tmp_path / "worker.log", env=env)
    ledger = Ledger.open(settings.database_url)
    try:
        yield Stack(env, settings, ledger, clean_redis, sim_admin, worker, [tenant], tmp_path)
    finally:
        worker.stop()
        ledger.close()


def test_a_confidential_client_signs_in_sends_and_refreshes(confidential: Stack) -> None:
    (tenant,) = confidential.tenants
    signed = confidential.sim.token_calls(tenant)
    assert signed["refresh_token"] == 0
    assert signed["with_client_secret"] == signed["device_code"] >= 1  # the secret went along

    first = send(confidential.settings, [tenant], 3, "conf")
    assert states(wait_settled(confidential.ledger, first)) == {"sent": 3}
    confidential.sim.revoke(tenant, access_tokens_only=True)  # forces one refresh
    second = send(confidential.settings, [tenant], 3, "confrefresh")
    found = wait_settled(confidential.ledger, second)

    assert states(found) == {"sent": 3}
    assert any(history(confidential.ledger, r.id) == [401, 204] for r in found)
    calls = confidential.sim.token_calls(tenant)
    assert calls["refresh_token"] == 1 and calls["invalid_grant"] == 0
    assert calls["with_client_secret"] == calls["device_code"] + calls["refresh_token"]
    assert_posted_once(confidential.sim, first)
    assert_posted_once(confidential.sim, second)
    confidential.worker.stop()  # its log is complete
    places = {
        "worker log": confidential.worker.log_text(),
        **ledger_texts(confidential.ledger),
        **redis_texts(confidential.redis),
    }
    assert " DEBUG msal" in places["worker log"]
    secrets = [CLIENT_SECRET, *confidential.sim.issued_tokens(tenant)]
    assert leaks(secrets, places) == []


# --- Redis failing during a refresh --------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[devredis.PrivateRedis]:
    """A Redis of this test's own, to stop or restrict without touching anyone else's."""
    server = devredis.start_private()
    try:
        yield server
    finally:
        server.stop()


def provider(
    settings: Settings,
    ledger: Ledger,
    client: redis.Redis,
    monotonic: Callable[[], float] = time.monotonic,
) -> TokenProvider:
    """A worker process's token provider (the worker builds it the same way, with the real
    clocks)."""
    cache_store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
    return TokenProvider(
        settings,
        cache_store,
        client,
        identity.http_client(settings),
        settings.token_refresh_margin,
        monotonic=monotonic,
    )


class SteppedClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def post(sim: RunningSimulator, token: str) -> int:
    url = chatthreads_url(sim.graph_url, str(uuid.uuid4()), "19:tokens@thread.tacv2")
    body = chatthread_body(f"token check {uuid.uuid4()}", ContentType.TEXT)
    with httpx.Client(verify=sim.ssl_context()) as http:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return http.post(url, content=body, headers=headers).status_code


def test_redis_gone_during_a_refresh_names_the_tenant_and_keeps_the_cache(
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    private_redis: devredis.PrivateRedis,
    cache_key: str,
    tmp_path: Path,
) -> None:
    env = stack_env(sim, private_redis.url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    settings = settings_from(env)
    tenant = new_tenant(settings)
    ledger = Ledger.open(settings.database_url)
    tokens = provider(settings, ledger, redis.Redis.from_url(private_redis.url))
    token = tokens.token(tenant)
    stored = ledger.token_caches.load(tenant)
    sim_admin.revoke(tenant, access_tokens_only=True)
    before = sim_admin.token_calls(tenant)

    private_redis.stop()
    tokens.reject(tenant, token)  # a 401 is still recorded with Redis gone: this never raises
    with pytest.raises(BrokerError) as caught:
        tokens.token(tenant)
    message = str(caught.value)
    assert f"tenant {tenant}" in message and "THREADCAST_REDIS_URL" in message
    assert "will be retried" in message
    # No lock, no refresh: the refresh token was not spent, and the cache is as it was.
    assert sim_admin.token_calls(tenant) == before
    assert ledger.token_caches.load(tenant) == stored

    restarted = devredis.start_private()  # empty, as a Redis restarted without persistence
    try:
        tokens = provider(settings, ledger, redis.Redis.from_url(restarted.url))
        tokens.reject(tenant, token)  # what the retried delivery's 401 does
        fresh = tokens.token(tenant)  # healed from the ledger, then refreshed
        assert fresh != token and post(sim, fresh) == 204
    finally:
        restarted.stop()
    after = sim_admin.token_calls(tenant)
    assert after["refresh_token"] == before["refresh_token"] + 1
    assert after["invalid_grant"] == 0
    ledger.close()


def test_an_unreachable_identity_platform_is_retried_not_a_sign_in(
    sim: RunningSimulator,
    redis_url: str,
    clean_redis: redis.Redis,
    cache_key: str,
    tmp_path: Path,
) -> None:
    settings = settings_from(
        stack_env(sim, redis_url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    )
    tenant = new_tenant(settings)
    ledger = Ledger.open(settings.database_url)
    stored = ledger.token_caches.load(tenant)
    nowhere = f"https://127.0.0.1:{devredis.free_port()}"  # nothing listens there
    away = settings.model_copy(update={"authority_host": nowhere})
    tokens = provider(away, ledger, redis.Redis.from_url(redis_url))
    with pytest.raises(IdentityError) as caught:
        tokens.token(tenant)
    message = str(caught.value)
    assert f"tenant {tenant}" in message and nowhere in message and "retried" in message
    assert ledger.token_caches.load(tenant) == stored
    assert {a.tenant: a.state for a in list_accounts(settings)}[tenant] == "ok"  # not dead
    ledger.close()


def cached(client: redis.Redis, tenant: str) -> str | None:
    """The tenant's cache ciphertext as Redis holds it."""
    found = client.get(TOKEN_CACHE_KEY + tenant)
    return None if found is None else bytes(found).decode()  # type: ignore[arg-type]


def test_a_refresh_whose_redis_write_fails_is_not_lost(
    sim: RunningSimulator,
    sim_admin: SimAdmin,
    private_redis: devredis.PrivateRedis,
    cache_key: str,
    tmp_path: Path,
) -> None:
    """The refresh rotates the refresh token, then Redis refuses the new cache (an ACL that
    makes the cache key read-only stands in for a Redis lost between the two): the ledger
    already holds the new state, and the next refresh starts from it, not from the Redis
    copy whose refresh token has rotated out."""
    env = stack_env(sim, private_redis.url, f"sqlite:///{tmp_path / 'ledger.db'}", cache_key)
    settings = settings_from(env)
    tenant = new_tenant(settings)
    admin = redis.Redis.from_url(private_redis.url)
    cast(Any, admin).execute_command(
        "ACL",
        "SETUSER",
        "worker",
        "on",
        ">pw",
        "+@all",
        "~threadcast:tokenlock:*",
        "~threadcast:refused-token:*",
        "~threadcast:needs-signin:*",
        "%R~threadcast:tokencache:*",
    )
    limited = redis.Redis.from_url(private_redis.url.replace("//", "//worker:pw@"))
    ledger = Ledger.open(settings.database_url)
    tokens = provider(settings, ledger, limited)
    token = tokens.token(tenant)
    stale = cached(admin, tenant)
    sim_admin.revoke(tenant, access_tokens_only=True)

    tokens.reject(tenant, token)
    with pytest.raises(BrokerError, match=f"tenant {tenant}.*will be retried"):
        tokens.token(tenant)  # refreshed at the identity platform, then Redis said no
    assert sim_admin.token_calls(tenant)["refresh_token"] == 1
    assert cached(admin, tenant) == stale
    assert ledger.token_caches.load(tenant) not in (None, stale)  # the new state is durable

    other_process = provider(settings, ledger, admin)
    other_process.reject(tenant, token)  # as its own 401 with the old token would
    fresh = other_process.token(tenant)
    assert fresh != token and post(sim, fresh) == 204
    calls = sim_admin.token_calls(tenant)
    assert calls["refresh_token"] == 1 and calls["invalid_grant"] == 0  # no second refresh
    assert cached(admin, tenant) == ledger.token_caches.load(tenant)  # Redis healed
    ledger.close()
