"""A wrong client id or key found at start, and ``threadcast rekey``.

The worker's start-up check (TokenCacheStore.verify_key, which ``threadcast worker`` and the
Celery app run before consuming) refuses a THREADCAST_CLIENT_ID that made none of the stored
caches, as it refuses a key that opens none. ``threadcast rekey`` re-encrypts both copies of
every cache (ledger and Redis) under the first key, so old keys can be dropped, and it waits
for a refresh in progress (the tenant's refresh lock) instead of overwriting its result.
Real sign-ins against the simulator, real Redis, both ledger backends.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from producer.cli import main
from producer.signin import sign_in
from simulator.process import RunningSimulator
from tests.integration.conftest import settings_from, stack_env
from threadcast.constants import TOKEN_CACHE_KEY, TOKEN_LOCK_KEY
from threadcast.errors import ConfigError
from threadcast.ledger import Ledger
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore


@dataclass
class Signed:
    env: dict[str, str]  # THREADCAST_* of the deployment, with the old key only
    settings: Settings
    ledger: Ledger
    redis: redis.Redis
    tenants: list[str]
    old: str  # the key the caches were written with


@pytest.fixture
def signed(
    sim: RunningSimulator, redis_url: str, clean_redis: redis.Redis, database_url: str
) -> Iterator[Signed]:
    old = Fernet.generate_key().decode()
    env = stack_env(sim, redis_url, database_url, old)
    settings = settings_from(env)
    tenants = [str(uuid.uuid4()) for _ in range(2)]
    for tenant in tenants:
        sign_in(settings, tenant, lambda _text: None)
    ledger = Ledger.open(database_url)
    yield Signed(env, settings, ledger, clean_redis, tenants, old)
    ledger.close()


def store(signed: Signed, **over: object) -> TokenCacheStore:
    settings = signed.settings.model_copy(update=over)
    return TokenCacheStore.for_settings(settings, signed.redis, signed.ledger.token_caches)


def keyed(key: str) -> dict[str, object]:
    return {"token_cache_key": SecretStr(key)}


def copies(signed: Signed, tenant: str) -> tuple[bytes, bytes]:
    durable = signed.ledger.token_caches.load(tenant)
    cached = signed.redis.get(TOKEN_CACHE_KEY + tenant)
    assert durable is not None and cached is not None
    return durable.encode(), cached


def opens(key: str, blob: bytes) -> bool:
    try:
        Fernet(key).decrypt(blob)
    except InvalidToken:
        return False
    return True


# A wrong client id or key, found at start.


def test_verify_key_refuses_a_client_id_that_made_no_stored_cache(signed: Signed) -> None:
    store(signed).verify_key()  # as configured: fine
    with pytest.raises(ConfigError) as caught:
        store(signed, client_id="00000000-0000-0000-0000-0000000000aa").verify_key()
    message = str(caught.value)
    assert message.startswith("THREADCAST_CLIENT_ID is '00000000-0000-0000-0000-0000000000aa'")
    assert signed.settings.client_id is not None and repr(signed.settings.client_id) in message
    assert signed.old not in message
    with pytest.raises(ConfigError, match="THREADCAST_TOKEN_CACHE_KEY opens none"):
        store(signed, **keyed(Fernet.generate_key().decode())).verify_key()


def test_threadcast_worker_with_another_client_id_stops_before_it_consumes(
    signed: Signed,
) -> None:
    env = signed.env | {"THREADCAST_CLIENT_ID": "00000000-0000-0000-0000-0000000000bb"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "producer.cli", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("threadcast worker started with a client id that made none of the caches")
    assert done.returncode == 2
    assert done.stderr.startswith("threadcast: error: THREADCAST_CLIENT_ID is ")
    assert done.stderr.count("\n") == 1


# threadcast rekey


def rekey(signed: Signed, monkeypatch: pytest.MonkeyPatch, key: str) -> int:
    for name, value in (signed.env | {"THREADCAST_TOKEN_CACHE_KEY": key}).items():
        monkeypatch.setenv(name, value)
    return main(["rekey"])


def test_rekey_moves_both_copies_of_every_cache_to_the_first_key(
    signed: Signed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new = Fernet.generate_key().decode()
    before = {t: store(signed).load(t) for t in signed.tenants}
    assert rekey(signed, monkeypatch, f"{new},{signed.old}") == 0
    out = capsys.readouterr().out
    assert "re-encrypted the token caches of 2 of 2 tenants" in out
    assert new not in out and signed.old not in out
    for tenant in signed.tenants:
        durable, cached = copies(signed, tenant)
        assert durable == cached  # still one state, as load() expects
        assert opens(new, durable) and not opens(signed.old, durable)
    only_new = store(signed, **keyed(new))
    only_new.verify_key()
    signed.redis.flushdb()  # the ledger copy alone is enough too
    assert {t: only_new.load(t) for t in signed.tenants} == before


def test_rekey_waits_for_a_refresh_in_progress_and_keeps_what_it_wrote(
    signed: Signed, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = Fernet.generate_key().decode()
    tenant = signed.tenants[0]
    both = store(signed, **keyed(f"{new},{signed.old}"))
    refreshed = (both.load(tenant) or "").replace('"AccessToken"', '"AccessToken" ', 1)
    assert refreshed and refreshed != both.load(tenant)
    lock = signed.redis.lock(TOKEN_LOCK_KEY + tenant, timeout=60)
    assert lock.acquire(blocking=False)  # a worker's refresh is under way
    codes: list[int] = []
    keys = f"{new},{signed.old}"
    running = threading.Thread(target=lambda: codes.append(rekey(signed, monkeypatch, keys)))
    running.start()
    time.sleep(1.0)
    assert running.is_alive(), "rekey did not wait for the tenant's refresh lock"
    both.save(tenant, refreshed)  # the refresh's rotated cache, written under the lock
    lock.release()
    running.join(60)
    assert codes == [0]
    assert store(signed, **keyed(new)).load(tenant) == refreshed
    durable, cached = copies(signed, tenant)
    assert durable == cached and opens(new, durable) and not opens(signed.old, durable)


def test_rekey_names_a_copy_no_key_opens_and_does_the_rest(
    signed: Signed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new = Fernet.generate_key().decode()
    broken, fine = signed.tenants
    stranger = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
    signed.redis.set(TOKEN_CACHE_KEY + broken, stranger)
    assert rekey(signed, monkeypatch, f"{new},{signed.old}") == 1
    captured = capsys.readouterr()
    assert f"tenant {broken}: its redis copy opens with no key" in captured.err
    assert "re-encrypted the token caches of 1 of 2 tenants" in captured.out
    assert opens(new, copies(signed, fine)[1]) and opens(new, copies(signed, broken)[0])
    assert copies(signed, broken)[1] == stranger.encode()  # left as it was
