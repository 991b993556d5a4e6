"""``threadcast doctor`` against the real stack: a worker (so a dispatcher), the simulator over
HTTPS, signed-in tenants, real Redis and ledgers; each failure mode provoked for real.

Every test checks the text and the ``--json`` report agree: the same verdict per check, the
same exit code.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import pytest
import redis
from cryptography.fernet import Fernet

from producer import Producer, doctor
from producer.cli import main
from producer.devredis import free_port
from producer.scheduler import run_scheduler
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from tests.integration.tokentools import leaks, new_tenant
from threadcast import heartbeat
from threadcast.constants import DISPATCHER_HEARTBEAT_KEY, SCHEDULER_LEASE_KEY
from threadcast.dispatch import keys
from threadcast.heartbeat import Heartbeat
from threadcast.ledger import migrations
from threadcast.ledger.engine import make_engine
from threadcast.tokencache import TokenCacheStore

LINE = re.compile(r"^(ok|warn|FAIL) +(.+?): ")


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stack:
    """The stack's settings in the environment, as an operator's shell would have them."""
    for name, value in stack.env.items():
        if name.startswith("THREADCAST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return stack


@pytest.fixture
def scheduler(stack: Stack) -> Iterator[None]:
    """A real scheduler, holding its lease until the test ends (then dropping it)."""
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(stack.settings, stop), daemon=True)
    thread.start()
    wait_for(lambda: stack.redis.exists(SCHEDULER_LEASE_KEY) == 1, 20, "the scheduler's lease")
    yield
    stop.set()
    thread.join(20)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def checkup(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str], str]:
    """Doctor as text (every line) and as JSON: the exit code, each check's verdict, the
    text. Asserts the two agree."""
    code, text = run(capsys, "--verbose")
    json_code, raw = run(capsys, "--json")
    report = json.loads(raw)
    verdicts = {c["name"]: c["status"] for c in report["checks"]}
    lines = [LINE.match(line) for line in text.splitlines()[:-1]]
    assert all(lines), text
    assert {m[2]: m[1].lower() for m in lines if m} == verdicts
    assert code == json_code == (0 if report["ok"] else 1)
    assert report["ok"] == ("fail" not in verdicts.values())
    return code, verdicts, text


def line(text: str, name: str) -> str:
    found = [row for row in text.splitlines() if LINE.match(row) and f"  {name}: " in row]
    assert len(found) == 1, (name, text)
    return found[0]


@pytest.mark.usefixtures("scheduler")
def test_all_ok(env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, verdicts, text = checkup(capsys)
    assert code == 0, text
    assert set(verdicts.values()) == {"ok"}, text
    expected = {
        "settings",
        "redis",
        "redis maxmemory-policy",
        "clock",
        "ledger",
        "graph",
        "token cache key",
        "identity platform",
        "dispatcher",
        "scheduler",
    }
    assert set(verdicts) == expected | {f"tenant {t}" for t in env.tenants}
    assert f"schema version {migrations.HEAD} (current)" in line(text, "ledger")
    assert "Group.ReadWrite.All" in line(text, f"tenant {env.tenants[0]}")
    assert "refresh token: yes" in line(text, f"tenant {env.tenants[0]}")
    assert "holds the lease" in line(text, "dispatcher") and "s left" in line(text, "scheduler")
    folded = run(capsys)[1]  # without --verbose: the tenants that are fine, on one line
    assert "ok    tenants: 2 signed in" in folded and f"tenant {env.tenants[0]}:" not in folded


@pytest.mark.backends("sqlite")
def test_unreachable_redis(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THREADCAST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, verdicts, text = checkup(capsys)
    assert code == 1 and verdicts["redis"] == "fail"
    assert "cannot reach redis://127.0.0.1:" in line(text, "redis")
    assert "THREADCAST_REDIS_URL" in line(text, "redis")
    for name in ("redis maxmemory-policy", "clock", "dispatcher", "scheduler"):
        assert "not checked: Redis is unreachable" in line(text, name)
    assert verdicts["ledger"] == verdicts["token cache key"] == "ok"  # the rest still checked


@pytest.mark.backends("sqlite")
def test_wrong_ca_bundle(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THREADCAST_CA_BUNDLE", certifi.where())  # public CAs, not the sim's
    code, verdicts, text = checkup(capsys)
    assert code == 1
    for name in ("graph", "identity platform"):
        assert verdicts[name] == "fail"
        assert "TLS certificate not trusted" in line(text, name)
        assert "check THREADCAST_CA_BUNDLE" in line(text, name)


@pytest.mark.backends("sqlite")
def test_graph_and_identity_platform_unreachable_or_wrong(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THREADCAST_GRAPH_URL", f"https://127.0.0.1:{free_port()}")
    wrong = env.env["THREADCAST_AUTHORITY_HOST"] + "/no-such-path"
    monkeypatch.setenv("THREADCAST_AUTHORITY_HOST", wrong)
    code, verdicts, text = checkup(capsys)
    assert code == 1 and verdicts["graph"] == verdicts["identity platform"] == "fail"
    assert "cannot reach" in line(text, "graph") and "THREADCAST_GRAPH_URL" in line(text, "graph")
    identity = line(text, "identity platform")
    assert "answered HTTP 404" in identity and "THREADCAST_AUTHORITY_HOST" in identity


@pytest.mark.backends("sqlite")
def test_wrong_cache_key_and_rotation(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", new_key)
    code, verdicts, text = checkup(capsys)
    assert code == 1 and verdicts["token cache key"] == "fail"
    assert "cannot decrypt the token caches of 2 of 2 tenants" in line(text, "token cache key")
    for tenant in env.tenants:
        assert verdicts[f"tenant {tenant}"] == "fail"
        assert "cannot decrypt" in line(text, f"tenant {tenant}")

    # A rotation: the new key first, the old one still listed, decrypts them all.
    old_key = env.env["THREADCAST_TOKEN_CACHE_KEY"]
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", f"{new_key},{old_key}")
    assert checkup(capsys)[1]["token cache key"] == "ok"


@pytest.mark.backends("sqlite")
def test_maxmemory_policy(env: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = env.redis.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        env.redis.config_set("maxmemory-policy", "allkeys-lru")
        code, verdicts, text = checkup(capsys)
        assert code == 1 and verdicts["redis maxmemory-policy"] == "fail"
        assert "allkeys-lru" in line(text, "redis maxmemory-policy")
        assert "noeviction" in line(text, "redis maxmemory-policy")

        env.redis.config_set("maxmemory-policy", "volatile-lru")  # never evicts a queue
        code, verdicts, text = checkup(capsys)
        assert verdicts["redis maxmemory-policy"] == "ok"
        assert "evicts only keys with a TTL" in line(text, "redis maxmemory-policy")
    finally:
        env.redis.config_set("maxmemory-policy", before)


@pytest.mark.backends("sqlite")
def test_no_dispatcher_and_a_stale_lease(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another database of the same Redis: no worker has ever run there.
    empty = env.env["THREADCAST_REDIS_URL"].rsplit("/", 1)[0] + "/2"
    client = redis.Redis.from_url(empty)
    client.flushdb()
    monkeypatch.setenv("THREADCAST_REDIS_URL", empty)
    try:
        code, verdicts, text = checkup(capsys)
        assert code == 1 and verdicts["dispatcher"] == "fail"
        assert "no worker is running" in line(text, "dispatcher")
        assert verdicts["scheduler"] == "warn"  # nothing is scheduled

        client.set(keys.LEADER, "gone-host:123:abcd")  # a lease nothing renews or expires
        code, verdicts, text = checkup(capsys)
        assert verdicts["dispatcher"] == "fail" and "has no TTL" in line(text, "dispatcher")

        # A lease renewed by a loop whose turns never complete: no heartbeat.
        client.set(keys.LEADER, "stuck-host:7:abcd", px=5_000)
        code, verdicts, text = checkup(capsys)
        assert verdicts["dispatcher"] == "fail"
        assert "holds its lease but its heartbeat is none" in line(text, "dispatcher")
        beat = heartbeat.Beat("stuck-host:7:abcd", 3, 0, "OperationalError: refused")
        Heartbeat(client).beat(beat)
        code, verdicts, text = checkup(capsys)
        assert verdicts["dispatcher"] == "warn"
        assert "its turns fail (OperationalError: refused)" in line(text, "dispatcher")
        client.pexpire(DISPATCHER_HEARTBEAT_KEY, 2_000)  # written 28 s ago
        code, verdicts, text = checkup(capsys)
        assert verdicts["dispatcher"] == "fail" and "s old" in line(text, "dispatcher")
    finally:
        client.flushdb()
        client.close()


@pytest.mark.backends("sqlite")
def test_no_scheduler_fails_only_when_something_waits_for_it(
    env: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert checkup(capsys)[1]["scheduler"] == "warn"
    target = {"tenant": env.tenants[0], "group": str(uuid.uuid4()), "channel": "19:d@thread.tacv2"}
    with Producer(env.settings) as producer:
        result = producer.send("later", [target], send_at=datetime.now(UTC) + timedelta(hours=1))
        try:
            code, verdicts, text = checkup(capsys)
            assert code == 1 and verdicts["scheduler"] == "fail"
            assert "1 scheduled broadcasts wait for one" in line(text, "scheduler")
        finally:
            producer.cancel(result.broadcast_id)


@pytest.mark.backends("sqlite")
def test_ledger_not_migrated_is_left_alone(
    env: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    older = migrations.HEAD - 1
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn, target=older)
    monkeypatch.setenv("THREADCAST_DATABASE_URL", url)
    code, verdicts, text = checkup(capsys)
    assert code == 1 and verdicts["ledger"] == "fail"
    assert f"schema version {older}, this threadcast knows {migrations.HEAD}" in line(
        text, "ledger"
    )
    assert "not checked: the ledger is not usable" in line(text, "token cache key")
    with engine.connect() as conn:
        assert migrations.current_version(conn) == older  # doctor only looked
    engine.dispose()

    missing = tmp_path / "missing.db"
    monkeypatch.setenv("THREADCAST_DATABASE_URL", f"sqlite:///{missing}")
    code, verdicts, text = checkup(capsys)
    assert code == 1 and f"no ledger file at {missing}" in line(text, "ledger")
    assert not missing.exists()  # and created none


@pytest.mark.backends("sqlite")
def test_clock_against_redis(env: Stack) -> None:
    with doctor.Probe.open(env.settings) as probe:
        assert doctor.check_clock(probe).status is doctor.Status.OK
        for skew, status in (
            (1.0, doctor.Status.WARN),
            (3.0, doctor.Status.FAIL),
            (-3.0, doctor.Status.FAIL),
        ):
            probe.clock = lambda skew=skew: time.time() + skew
            result = doctor.check_clock(probe)
            assert result.status is status, result
            assert ("ahead of" if skew > 0 else "behind") in result.detail


@pytest.fixture
def spare_tenant(env: Stack) -> Iterator[tuple[str, TokenCacheStore]]:
    """A tenant signed in for this test alone, removed after it."""
    tenant = new_tenant(env.settings)
    store = TokenCacheStore.for_settings(env.settings, env.redis, env.ledger.token_caches)
    yield tenant, store
    store.delete(tenant)


def rewrite(
    store: TokenCacheStore,
    tenant: str,
    *,
    target: str | None = None,
    expires_in: int | None = None,
    refresh: bool = True,
) -> None:
    """Change the tenant's stored cache: its access token's scopes or expiry, or drop its
    refresh token."""
    cache: dict[str, Any] = json.loads(store.load(tenant) or "{}")
    token = next(iter(cache["AccessToken"].values()))
    if target is not None:
        token["target"] = target
    if expires_in is not None:
        token["expires_on"] = str(int(time.time()) + expires_in)
    if not refresh:
        cache["RefreshToken"] = {}
    store.save(tenant, json.dumps(cache))


@pytest.mark.backends("sqlite")
def test_sign_in_states(
    env: Stack, spare_tenant: tuple[str, TokenCacheStore], capsys: pytest.CaptureFixture[str]
) -> None:
    tenant, store = spare_tenant
    name = f"tenant {tenant}"
    login = f"threadcast login --tenant {tenant}"

    rewrite(store, tenant, expires_in=-600)
    code, verdicts, text = checkup(capsys)
    assert verdicts[name] == "ok" and "expired 10 min ago" in line(text, name)

    rewrite(store, tenant, target="User.Read openid profile")
    code, verdicts, text = checkup(capsys)
    assert code == 1 and verdicts[name] == "fail"
    assert "scopes: User.Read openid profile" in line(text, name) and login in line(text, name)

    rewrite(store, tenant, target="Group.ReadWrite.All", expires_in=3600, refresh=False)
    assert checkup(capsys)[1][name] == "warn"  # works until its access token expires
    rewrite(store, tenant, expires_in=-60, refresh=False)
    code, verdicts, text = checkup(capsys)
    assert verdicts[name] == "fail" and "refresh token: none" in line(text, name)

    store.mark_needs_sign_in(tenant, store.load(tenant) or "", "invalid_grant [70000]")
    code, verdicts, text = checkup(capsys)
    assert verdicts[name] == "fail"
    assert "marked as needing sign-in (invalid_grant [70000])" in line(text, name)


@pytest.mark.backends("sqlite")
def test_no_secret_in_the_output(
    env: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_password, pg_password, client_secret = (secrets.token_urlsafe(24) for _ in range(3))
    env.redis.acl_setuser(
        "doctor",
        enabled=True,
        passwords=[f"+{redis_password}"],
        categories=["+@all"],
        keys=["*"],
        channels=["*"],
    )
    host = env.env["THREADCAST_REDIS_URL"].removeprefix("redis://")
    monkeypatch.setenv("THREADCAST_REDIS_URL", f"redis://doctor:{redis_password}@{host}")
    monkeypatch.setenv("THREADCAST_CLIENT_SECRET", client_secret)
    outputs: dict[str, str] = {}
    try:
        _, verdicts, outputs["text"] = checkup(capsys)
        outputs["json"] = run(capsys, "--json")[1]
        outputs["folded text"] = run(capsys)[1]
        assert verdicts["redis"] == "ok" and verdicts["tenant " + env.tenants[0]] == "ok"
        assert f"redis://***@{host}" in outputs["text"]

        pg = f"postgresql://threadcast:{pg_password}@127.0.0.1:{free_port()}/threadcast"
        monkeypatch.setenv("THREADCAST_DATABASE_URL", pg)
        outputs["pg text"] = run(capsys)[1]
        outputs["pg json"] = run(capsys, "--json")[1]
        assert "postgresql://***@127.0.0.1:" in outputs["pg text"]

        monkeypatch.setenv("THREADCAST_REDIS_URL", f"http://doctor:{redis_password}@{host}")
        outputs["broken setting"] = run(capsys, "--json")[1]
        assert "THREADCAST_REDIS_URL" in outputs["broken setting"]
    finally:
        env.redis.acl_deluser("doctor")
    tokens = [t for tenant in env.tenants for t in env.sim.issued_tokens(tenant)]
    assert tokens
    keys_ = env.env["THREADCAST_TOKEN_CACHE_KEY"].split(",")
    found = leaks([*tokens, *keys_, redis_password, pg_password, client_secret], outputs)
    assert found == []


def test_broken_setting_still_gives_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("THREADCAST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("THREADCAST_HTTP_TIMEOUT", "abc")
    monkeypatch.setenv("THREADCAST_TOKEN_CACHE_KEY", "not-a-fernet-key-but-secret")
    code, raw = run(capsys, "--json")
    report = json.loads(raw)
    assert code == 1 and report["ok"] is False
    details = [c["detail"] for c in report["checks"] if c["status"] == "fail"]
    assert any(d.startswith("THREADCAST_HTTP_TIMEOUT: ") and "'abc'" in d for d in details)
    assert any(d.startswith("THREADCAST_TOKEN_CACHE_KEY: ") for d in details)
    assert "not-a-fernet-key-but-secret" not in raw  # a secret setting's value is never shown


def test_settings_workers_need(env: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREADCAST_CLIENT_ID")
    monkeypatch.delenv("THREADCAST_TOKEN_CACHE_KEY")
    settings, results = doctor.check_settings()
    assert settings is not None and [r.status for r in results] == [doctor.Status.FAIL]
    assert "THREADCAST_CLIENT_ID and THREADCAST_TOKEN_CACHE_KEY not set" in results[0].detail
