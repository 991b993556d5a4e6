"""The shared token cache: encrypted, written through, healed, and refusing what is not its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from cryptography.fernet import Fernet
from pydantic import SecretStr

from producer.signin import sign_in
from simulator.process import RunningSimulator
from tests.integration.conftest import settings_from, stack_env
from threadcast.constants import TOKEN_CACHE_KEY
from threadcast.errors import ConfigError, TokenCacheError
from threadcast.ledger import Ledger
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore

# One backend: the caches' durable copy is one plain table (the suite under 10 minutes).
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def signed_in(
    sim: RunningSimulator,
    redis_url: str,
    clean_redis: redis.Redis,
    database_url: str,
    cache_key: str,
) -> Iterator[tuple[Settings, str, Ledger]]:
    settings = settings_from(stack_env(sim, redis_url, database_url, cache_key))
    tenant = str(uuid.uuid4())
    sign_in(settings, tenant, lambda _t: None)
    ledger = Ledger.open(database_url)
    yield settings, tenant, ledger
    ledger.close()


def store_for(settings: Settings, ledger: Ledger, **over: object) -> TokenCacheStore:
    client = redis.Redis.from_url(settings.redis_url)
    changed = settings.model_copy(update=over)
    return TokenCacheStore.for_settings(changed, client, ledger.token_caches)


def test_cache_is_encrypted_in_redis_and_in_the_ledger(
    signed_in: tuple[Settings, str, Ledger], clean_redis: redis.Redis
) -> None:
    settings, tenant, ledger = signed_in
    text = store_for(settings, ledger).load(tenant)
    assert text is not None
    secrets = [
        t["secret"]
        for kind in ("AccessToken", "RefreshToken")
        for t in json.loads(text)[kind].values()
    ]
    assert len(secrets) == 2
    in_redis = clean_redis.get(TOKEN_CACHE_KEY + tenant)
    in_ledger = ledger.token_caches.load(tenant)
    assert in_redis is not None and in_ledger == in_redis.decode()
    for secret in secrets:
        assert secret not in in_ledger and secret.encode() not in in_redis


def test_flushed_redis_is_healed_from_the_ledger(
    signed_in: tuple[Settings, str, Ledger], clean_redis: redis.Redis
) -> None:
    settings, tenant, ledger = signed_in
    store = store_for(settings, ledger)
    before = store.load(tenant)
    clean_redis.flushdb()
    assert store.load(tenant) == before
    assert clean_redis.exists(TOKEN_CACHE_KEY + tenant)


def test_corrupt_redis_copy_is_replaced_by_the_good_ledger_copy(
    signed_in: tuple[Settings, str, Ledger], clean_redis: redis.Redis
) -> None:
    settings, tenant, ledger = signed_in
    store = store_for(settings, ledger)
    before = store.load(tenant)
    clean_redis.set(TOKEN_CACHE_KEY + tenant, "garbage")
    assert store.load(tenant) == before
    assert clean_redis.get(TOKEN_CACHE_KEY + tenant) == ledger.token_caches.load(tenant).encode()


@pytest.mark.parametrize("where", ["redis", "both"])
def test_foreign_or_corrupt_cache_names_the_tenant_and_the_fix(
    signed_in: tuple[Settings, str, Ledger], clean_redis: redis.Redis, where: str
) -> None:
    settings, tenant, ledger = signed_in
    other = str(uuid.uuid4())
    sign_in(settings, other, lambda _t: None)
    foreign = clean_redis.get(TOKEN_CACHE_KEY + other)
    assert foreign is not None
    clean_redis.set(TOKEN_CACHE_KEY + tenant, foreign)
    if where == "both":
        ledger.token_caches.save(tenant, foreign.decode(), datetime.now(UTC))
    store = store_for(settings, ledger)
    if where == "redis":
        assert store.load(tenant) is not None  # healed from the ledger's own copy
        return
    with pytest.raises(TokenCacheError, match=f"{tenant}.*belongs to another tenant.*login"):
        store.load(tenant)


def test_other_key_and_other_client_id_are_refused(
    signed_in: tuple[Settings, str, Ledger],
) -> None:
    settings, tenant, ledger = signed_in
    wrong_key = store_for(
        settings, ledger, token_cache_key=SecretStr(Fernet.generate_key().decode())
    )
    with pytest.raises(TokenCacheError, match=f"{tenant}.*cannot be decrypted"):
        wrong_key.load(tenant)
    with pytest.raises(ConfigError, match="THREADCAST_TOKEN_CACHE_KEY opens none"):
        wrong_key.verify_key()
    other_app = store_for(settings, ledger, client_id="someone-else")
    with pytest.raises(TokenCacheError, match="was made for client id"):
        other_app.load(tenant)


def test_rotated_key_still_opens_old_caches(signed_in: tuple[Settings, str, Ledger]) -> None:
    settings, tenant, ledger = signed_in
    assert settings.token_cache_key is not None
    old = settings.token_cache_key.get_secret_value()
    new = Fernet.generate_key().decode()
    rotated = store_for(settings, ledger, token_cache_key=SecretStr(f"{new},{old}"))
    text = rotated.load(tenant)
    assert text is not None
    rotated.verify_key()
    rotated.save(tenant, text)  # re-encrypted under the new key
    assert store_for(settings, ledger, token_cache_key=SecretStr(new)).load(tenant) == text


def test_never_overwritten_with_an_empty_cache(signed_in: tuple[Settings, str, Ledger]) -> None:
    settings, tenant, ledger = signed_in
    store = store_for(settings, ledger)
    before = store.load(tenant)
    for empty in ("", "{}"):
        with pytest.raises(TokenCacheError, match="refusing to overwrite"):
            store.save(tenant, empty)
    assert store.load(tenant) == before
