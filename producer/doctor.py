"""``threadcast doctor``: a read-only checklist to run before a big broadcast.

Each check is a small function of a :class:`Probe` (the settings, plus the Redis client and
ledger engine opened once) returning :class:`Result` lines: ``ok``, ``warn`` (works, but
look) or ``fail`` (fix it before sending). A check whose service is down says "not checked"
(a warning: the failure is reported once, by the check of that service).

Doctor only looks. It never migrates the ledger, heals a Redis copy of a token cache, takes
a lease or refreshes a token, so it is safe against a live deployment at any time -- which
is why it reads the ledger with a plain engine (``Ledger.open`` would migrate it) and opens
the token caches itself (``TokenCacheStore.load`` rewrites a damaged Redis copy).

Nothing it prints carries a secret: URLs lose their user info, and every line passes the
logs' redaction with the configured secrets and the URLs' passwords as literals.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pydantic
import redis
from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from threadcast import endpoints, heartbeat, identity
from threadcast.constants import SCHEDULER_LEASE_KEY, TOKEN_CACHE_KEY
from threadcast.dispatch import keys
from threadcast.ledger import DeploymentFacts, TokenCacheRows
from threadcast.ledger.migrations import HEAD, current_version
from threadcast.ledger.schema import deliveries, schedules
from threadcast.logs import redact, secret_literals
from threadcast.settings import ENV_PREFIX, Settings
from threadcast.tokencache import TokenCacheStore

#: Seconds doctor waits for any one service: a hung one must not hang the checklist.
CONNECT_TIMEOUT = 5.0
#: Clock offsets against Redis: times one host writes (parked retries, send times, rate-limit
#: windows, lease deadlines) are read against another host's clock.
CLOCK_WARN_SECONDS = 0.5
CLOCK_FAIL_SECONDS = 2.0
_MIN_PASSWORD = 6  # shorter URL passwords as literals would mask ordinary words
# Greedy to the last "@" before the host: a password may hold an unescaped "@".
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"]*@")


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # what to do (warn, fail)


def ok(name: str, detail: str) -> Result:
    return Result(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str | None = None) -> Result:
    return Result(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> Result:
    return Result(name, Status.FAIL, detail, fix)


def failed(results: Sequence[Result]) -> bool:
    return any(r.status is Status.FAIL for r in results)


def mask_urls(text: str) -> str:
    """``text`` with the user info of every URL in it (``user:password@``) masked."""
    return _USERINFO.sub(r"\1***@", text)


# --- settings ------------------------------------------------------------------------------


def check_settings(given: Settings | None = None) -> tuple[Settings | None, list[Result]]:
    """The settings, or None with one failure per broken variable (pydantic reports them all,
    where ``load_settings`` stops at the first). ``given``: settings already loaded (the API
    process's), checked the same way past loading."""
    try:
        settings = given if given is not None else Settings()
    except pydantic.ValidationError as exc:
        return None, [_broken_setting(error) for error in exc.errors()]
    missing = [
        f"{ENV_PREFIX}{n.upper()}"
        for n in ("client_id", "token_cache_key")
        if getattr(settings, n) in (None, "")
    ]
    if missing:
        need = " and ".join(missing)
        return settings, [fail("settings", f"{need} not set", f"set {need}: workers need them")]
    detail = f"valid; endpoint setting {settings.endpoint}; client id {settings.client_id}"
    return settings, [ok("settings", detail)]


def _broken_setting(error: Any) -> Result:
    name = str(error["loc"][0]) if error["loc"] else "?"
    variable = f"{ENV_PREFIX}{name.upper()}"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = "" if _secret_setting(name) else f" (got {repr(error.get('input'))[:80]})"
    return fail(
        "settings", f"{variable}: {message}{shown}", f"fix {variable} (environment or .env)"
    )


def _secret_setting(name: str) -> bool:
    found = Settings.model_fields.get(name)
    return found is None or "SecretStr" in str(found.annotation)


# --- the probe: what the checks share ---------------------------------------------------------


@dataclass(frozen=True)
class TenantCache:
    """One tenant's stored token cache, opened read-only: each copy's plaintext or problem."""

    tenant: str
    texts: dict[str, str]  # copy ("ledger", "redis") -> the MSAL cache as JSON text
    problems: dict[str, str]  # copy -> why it cannot be used
    key_problems: frozenset[str]  # copies the key cannot decrypt

    @property
    def text(self) -> str | None:
        """The copy a refreshing worker uses: the ledger's when good (it is written first)."""
        return self.texts.get("ledger") or self.texts.get("redis")


@dataclass
class Probe:
    settings: Settings
    redis: redis.Redis
    redis_error: str | None = None
    engine: Engine | None = None
    ledger_version: int | None = None
    ledger_error: str | None = None
    clock: Callable[[], float] = time.time
    _caches: list[TenantCache] | None = field(default=None, repr=False)

    @classmethod
    @contextlib.contextmanager
    def open(cls, settings: Settings) -> Iterator[Probe]:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
        )
        probe = cls(settings, client, redis_error=_ping(client))
        try:
            probe.engine, probe.ledger_version, probe.ledger_error = _open_ledger(
                settings.database_url
            )
            yield probe
        finally:
            client.close()
            if probe.engine is not None:
                probe.engine.dispose()

    def unavailable(self, *needs: str) -> str | None:
        """Why a check needing ``redis``, ``ledger`` or ``tokens`` cannot run, if it cannot."""
        reasons = {
            "redis": "Redis is unreachable" if self.redis_error else None,
            "ledger": None if self.ledger_usable else "the ledger is not usable (see ledger)",
            "tokens": None if self.tokens_configured else "the settings lack what tokens need",
        }
        return next((reasons[n] for n in needs if reasons[n]), None)

    @property
    def ledger_usable(self) -> bool:
        return self.engine is not None and self.ledger_version == HEAD

    @property
    def tokens_configured(self) -> bool:
        return bool(self.settings.token_cache_key and self.settings.client_id)

    def caches(self) -> list[TenantCache]:
        """Every signed-in tenant's cache, opened once for all the checks that need them."""
        if self._caches is None:
            assert self.engine is not None
            rows = TokenCacheRows(self.engine)
            cipher = self.settings.cache_cipher()
            self._caches = [self._read(rows, cipher, t) for t in sorted(rows.tenants())]
        return self._caches

    def _read(self, rows: TokenCacheRows, cipher: MultiFernet, tenant: str) -> TenantCache:
        copies = {"ledger": rows.load(tenant)}
        if self.redis_error is None:
            raw = self.redis.get(TOKEN_CACHE_KEY + tenant)
            copies["redis"] = raw.decode() if isinstance(raw, bytes) else raw
        texts, problems, key_problems = {}, {}, set()
        for copy, blob in copies.items():
            if blob is None:
                continue
            try:
                texts[copy] = _open_cache(cipher, str(self.settings.client_id), tenant, blob)
            except _UnusableError as exc:
                problems[copy] = exc.reason
                if exc.key:
                    key_problems.add(copy)
        return TenantCache(tenant, texts, problems, frozenset(key_problems))

    def store(self) -> TokenCacheStore:
        """For its read-only questions (``needs_sign_in``); never for ``load`` or ``save``."""
        assert self.engine is not None
        return TokenCacheStore.for_settings(self.settings, self.redis, TokenCacheRows(self.engine))


def _ping(client: redis.Redis) -> str | None:
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _open_ledger(url: str) -> tuple[Engine | None, int | None, str | None]:
    """An engine on the ledger and its schema version, or why there is none."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.is_file():  # connecting would create an empty file
            return None, None, f"no ledger file at {path}"
    engine = _engine(parsed)
    try:
        with engine.connect() as conn:
            return engine, current_version(conn), None
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return None, None, f"{type(exc).__name__}: {reason}"


def _engine(url: URL) -> Engine:
    # Not threadcast's engine: its SQLite one takes a write lock per transaction and sets
    # pragmas, and its PostgreSQL one waits as long as TCP does for an unreachable server.
    if url.get_backend_name() == "sqlite":
        return create_engine(url, poolclass=NullPool)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    timeout = {"connect_timeout": int(CONNECT_TIMEOUT)}
    return create_engine(url, poolclass=NullPool, connect_args=timeout)


class _UnusableError(Exception):
    def __init__(self, reason: str, *, key: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


def _open_cache(cipher: MultiFernet, client_id: str, tenant: str, blob: str) -> str:
    """The cache inside a stored envelope, checked as ``TokenCacheStore`` checks it."""
    try:
        envelope = json.loads(cipher.decrypt(blob.encode()))
    except InvalidToken:
        raise _UnusableError("THREADCAST_TOKEN_CACHE_KEY cannot decrypt it", key=True) from None
    except ValueError:
        raise _UnusableError("it is corrupt") from None
    if not isinstance(envelope, dict) or envelope.get("tenant") != tenant:
        raise _UnusableError("it belongs to another tenant")
    if envelope.get("client_id") != client_id:
        raise _UnusableError("it was made for another client id than THREADCAST_CLIENT_ID")
    return str(envelope["cache"])


# --- Redis ----------------------------------------------------------------------------------


def check_redis(probe: Probe) -> Result:
    url = mask_urls(probe.settings.redis_url)
    if probe.redis_error is not None:
        return fail(
            "redis",
            f"cannot reach {url} ({probe.redis_error})",
            "check THREADCAST_REDIS_URL, and that Redis runs and lets this host in",
        )
    version = probe.redis.info("server").get("redis_version", "?")
    return ok("redis", f"{url} answers (Redis {version})")


def check_memory_policy(probe: Probe) -> Result:
    name = "redis maxmemory-policy"
    if why := probe.unavailable("redis"):
        return warn(name, f"not checked: {why}")
    policy = str(probe.redis.info("memory").get("maxmemory_policy", ""))
    if policy == "noeviction":
        return ok(name, "noeviction: Redis refuses writes when full rather than drop a key")
    if policy.startswith("volatile-"):
        return ok(
            name,
            f"{policy}: evicts only keys with a TTL; the queues, the delivery index "
            "and the token caches have none (when full it may drop rate-limit windows, "
            "risking 429s, or a lease, handing it over early)",
        )
    return fail(
        name,
        f"{policy or 'unknown'}: Redis may evict queued deliveries and token caches when full",
        "set maxmemory-policy noeviction (redis.conf, or CONFIG SET)",
    )


def check_clock(probe: Probe) -> Result:
    """This host's clock against Redis's (run doctor on every worker and scheduler host)."""
    if why := probe.unavailable("redis"):
        return warn("clock", f"not checked: {why}")
    before = probe.clock()
    seconds, micros = probe.redis.time()
    after = probe.clock()
    offset = seconds + micros / 1e6 - (before + after) / 2
    # Half the round trip is unknowable: only judge what is certain.
    certain = max(0.0, abs(offset) - (after - before) / 2)
    detail = (
        f"this host is {abs(offset):.3f} s {'behind' if offset > 0 else 'ahead of'} Redis "
        f"(round trip {(after - before) * 1000:.1f} ms)"
    )
    fix = "synchronise the clocks of this host and the Redis host (NTP, chrony)"
    if certain > CLOCK_FAIL_SECONDS:
        return fail("clock", detail, fix)
    if certain > CLOCK_WARN_SECONDS:
        return warn("clock", detail, fix)
    return ok("clock", detail)


# --- the ledger -------------------------------------------------------------------------------


def check_ledger(probe: Probe) -> Result:
    url = mask_urls(probe.settings.database_url)
    have = probe.ledger_version
    if probe.ledger_error is not None:
        return fail(
            "ledger",
            f"{url}: {probe.ledger_error}",
            "check THREADCAST_DATABASE_URL "
            "(a worker creates and migrates the ledger when it first starts)",
        )
    if have is not None and have < HEAD:
        return fail(
            "ledger",
            f"{url}: schema version {have}, this threadcast knows {HEAD}",
            "start the workers of this version: the ledger migrates itself when "
            "threadcast opens it (doctor only looks)",
        )
    if have is not None and have > HEAD:
        return fail(
            "ledger",
            f"{url}: schema version {have} is newer than this threadcast ({HEAD})",
            "upgrade threadcast on this host",
        )
    return ok("ledger", f"{url}: schema version {have} (current)")


# --- token caches and sign-ins -------------------------------------------------------------


def check_cache_key(probe: Probe) -> Result:
    name = "token cache key"
    if why := probe.unavailable("ledger", "tokens"):
        return warn(name, f"not checked: {why}")
    caches = probe.caches()
    if not caches:
        return warn(
            name,
            "no tenant has signed in: nothing to decrypt",
            "threadcast login --tenant TENANT_ID for each tenant",
        )
    dead = [c.tenant for c in caches if c.key_problems and c.text is None]
    stale = [c.tenant for c in caches if c.key_problems and c.text is not None]
    if dead:
        return fail(
            name,
            f"THREADCAST_TOKEN_CACHE_KEY cannot decrypt the token caches of "
            f"{len(dead)} of {len(caches)} tenants ({_names(dead)})",
            "use the key they were written with; to rotate, list the new key first "
            "and the old one after it (new,old)",
        )
    if stale:
        return warn(
            name,
            f"decrypts every tenant's usable copy, but not the other copy of {_names(stale)}",
            "nothing: a worker replaces it with the good copy on first use",
        )
    return ok(name, f"decrypts every tenant's token cache ({len(caches)} tenants)")


@dataclass(frozen=True)
class SignIn:
    """What a tenant's cached tokens say (never a token itself)."""

    tenant: str
    user: str | None
    scopes: tuple[str, ...]
    expires_on: float | None  # the newest access token's expiry (epoch seconds)
    refresh_token: bool
    needs_sign_in: str | None  # why a worker found this sign-in dead
    now: float


def check_tenants(probe: Probe) -> list[Result]:
    if why := probe.unavailable("ledger", "tokens"):
        return [warn("tenants", f"not checked: {why}")]
    active = endpoints.active(probe.settings.endpoint, _switch(probe))
    accepted = endpoints.ACCEPTED_SCOPES[active]
    return [_tenant(probe, cache, accepted) for cache in probe.caches()]


def _switch(probe: Probe) -> endpoints.Switch | None:
    """The deployment's recorded switch to v1.0, read from the ledger (never written)."""
    if probe.engine is None:
        return None
    try:
        return endpoints.recorded(DeploymentFacts(probe.engine))
    except SQLAlchemyError:  # a ledger not yet migrated to v7 has no such table
        return None


def _tenant(probe: Probe, cache: TenantCache, accepted: frozenset[str]) -> Result:
    name, login = f"tenant {cache.tenant}", f"threadcast login --tenant {cache.tenant}"
    if cache.text is None:
        why = "; ".join(f"{copy} copy: {reason}" for copy, reason in cache.problems.items())
        key = f"fix THREADCAST_TOKEN_CACHE_KEY, or {login}" if cache.key_problems else login
        return fail(name, f"its token cache cannot be used ({why})", key)
    signin = _sign_in(probe, cache)
    status, fix = _verdict(signin, accepted)
    return Result(name, status, _describe(signin), fix)


def _sign_in(probe: Probe, cache: TenantCache) -> SignIn:
    data: dict[str, Any] = json.loads(cache.text or "{}")
    users = [a.get("username") for a in data.get("Account", {}).values()]
    tokens = [t for t in data.get("AccessToken", {}).values() if t.get("realm") == cache.tenant]
    newest = max(tokens, key=lambda t: float(t["expires_on"]), default=None)
    granted: dict[str, Any] = newest or next(iter(data.get("RefreshToken", {}).values()), {})
    scopes = tuple(endpoints.scope_names(granted.get("target")))
    return SignIn(
        cache.tenant,
        users[0] if users else None,
        scopes,
        float(newest["expires_on"]) if newest else None,
        bool(data.get("RefreshToken")),
        _sign_in_mark(probe, cache),
        probe.clock(),
    )


def _sign_in_mark(probe: Probe, cache: TenantCache) -> str | None:
    """Why a worker found this very cache state dead (its refresh refused), if one did."""
    if probe.redis_error is not None:
        return None  # the marks live in Redis
    store = probe.store()
    found = (store.needs_sign_in(cache.tenant, text) for text in cache.texts.values())
    return next((reason for reason in found if reason), None)


def _verdict(signin: SignIn, accepted: frozenset[str]) -> tuple[Status, str | None]:
    login = f"threadcast login --tenant {signin.tenant}"
    if signin.needs_sign_in is not None:
        return Status.FAIL, login
    if accepted and not {a.lower() for a in accepted} & {s.lower() for s in signin.scopes}:
        return Status.FAIL, f"grant {' or '.join(sorted(accepted))} to the app, then {login}"
    if not signin.refresh_token:
        valid = signin.expires_on is not None and signin.expires_on > signin.now
        return (Status.WARN if valid else Status.FAIL), login
    return Status.OK, None


def _describe(signin: SignIn) -> str:
    parts = [f"signed in as {signin.user or '?'}"]
    if signin.needs_sign_in is not None:
        parts.append(f"marked as needing sign-in ({signin.needs_sign_in})")
    parts.append(f"scopes: {' '.join(signin.scopes) or 'none'}")
    parts.append(_expiry(signin))
    parts.append("refresh token: " + ("yes" if signin.refresh_token else "none"))
    return "; ".join(parts)


def _expiry(signin: SignIn) -> str:
    if signin.expires_on is None:
        return "no access token cached"
    at = datetime.fromtimestamp(signin.expires_on, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    left = signin.expires_on - signin.now
    if left > 0:
        return f"access token valid for {_span(left)} (until {at})"
    after = ", refreshed on next use" if signin.refresh_token else ""
    return f"access token expired {_span(-left)} ago ({at}){after}"


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _names(tenants: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(tenants) - shown} more" if len(tenants) > shown else ""
    return ", ".join(tenants[:shown]) + more


# --- Graph and the identity platform over TLS ----------------------------------------------


def check_graph(probe: Probe) -> Result:
    """Any HTTP answer over a verified TLS connection: Graph is there (no token is sent)."""
    url = f"{probe.settings.graph_url}/v1.0/"

    def judge(response: httpx.Response, how: str) -> Result:
        return ok("graph", f"{url} answered HTTP {response.status_code} {how}")

    return _https(probe.settings, "graph", url, "THREADCAST_GRAPH_URL", judge)


def check_identity(probe: Probe) -> Result:
    """The OpenID configuration MSAL reads first, for a signed-in tenant if there is one."""
    usable = probe.unavailable("ledger", "tokens") is None
    tenants = [c.tenant for c in probe.caches()] if usable else []
    segment = tenants[0] if tenants else "organizations"
    url = f"{probe.settings.authority_host}/{segment}/v2.0/.well-known/openid-configuration"

    def judge(response: httpx.Response, how: str) -> Result:
        if response.status_code == httpx.codes.OK and "token_endpoint" in _json(response):
            return ok("identity platform", f"{url}: OpenID configuration {how}")
        error = _json(response).get("error")
        return fail(
            "identity platform",
            f"{url} answered HTTP {response.status_code}"
            f"{f' ({error})' if error else ''}, not an OpenID configuration",
            "check THREADCAST_AUTHORITY_HOST (https://login.microsoftonline.com "
            "for Microsoft's cloud)",
        )

    return _https(probe.settings, "identity platform", url, "THREADCAST_AUTHORITY_HOST", judge)


def _https(
    settings: Settings,
    name: str,
    url: str,
    variable: str,
    judge: Callable[[httpx.Response, str], Result],
) -> Result:
    """GET ``url`` with the TLS trust the worker uses; judge the answer or say why none came."""
    trust = f"THREADCAST_CA_BUNDLE={settings.ca_bundle}" if settings.ca_bundle else "system trust"
    try:
        client = identity.http_client(settings, timeout=min(settings.http_timeout, 10.0))
    except ssl.SSLError as exc:
        return fail(
            name,
            f"the CA bundle cannot be loaded ({exc})",
            "point THREADCAST_CA_BUNDLE at a PEM file of CA certificates",
        )
    try:
        with client:
            started = time.monotonic()
            response = client.get(url)
            elapsed = (time.monotonic() - started) * 1000
            how = f"over {_tls_version(response)} in {elapsed:.0f} ms (verified: {trust})"
            return judge(response, how)
    except httpx.HTTPError as exc:
        return _unreachable(name, url, exc, variable, trust)


def _unreachable(name: str, url: str, exc: httpx.HTTPError, variable: str, trust: str) -> Result:
    host = urlsplit(url).netloc
    cert = _cert_error(exc)
    if cert is not None:
        return fail(
            name,
            f"{host}: TLS certificate not trusted ({cert.verify_message}; {trust})",
            f"check THREADCAST_CA_BUNDLE: it must hold the CA that issued {host}'s "
            "certificate (unset: the system trust)",
        )
    return fail(
        name,
        f"cannot reach {url} ({type(exc).__name__}: {exc})",
        f"check {variable}, and DNS, firewalls and proxies from this host",
    )


def _cert_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure under httpx's and httpcore's wrappers, if that is the cause."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        if id(current) in seen:
            continue
        seen.add(id(current))
        nested = [current.__cause__, current.__context__, *current.args]
        todo += [e for e in nested if isinstance(e, BaseException)]
    return None


def _tls_version(response: httpx.Response) -> str:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return str(ssl_object.version()) if ssl_object is not None else "TLS"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# --- the leader leases -------------------------------------------------------------------------


def check_dispatcher(probe: Probe) -> Result:
    if why := probe.unavailable("redis"):
        return warn("dispatcher", f"not checked: {why}")
    held = _lease("dispatcher", probe.redis, keys.LEADER)
    if held is not None:
        return _heartbeat(held, probe.redis) if held.status is Status.OK else held
    return fail(
        "dispatcher",
        "no dispatcher holds its lease: no worker is running",
        "start threadcast worker (every worker runs a dispatcher; one holds the lease)",
    )


def _heartbeat(held: Result, client: redis.Redis) -> Result:
    """A held lease proves the dispatcher's loop renews it; its heartbeat proves its turns
    release work (a turn failing over and over still renews the lease)."""
    reading = heartbeat.read(client)
    fix = (
        "see the log of the worker holding the lease (its /healthz shows the dispatcher); "
        "restart that worker if it does not recover"
    )
    if reading is None or reading.stale:
        age = "none" if reading is None else f"{reading.age:.0f} s old"
        return fail("dispatcher", f"it holds its lease but its heartbeat is {age}", fix)
    beat = reading.beat
    if beat.error is not None:
        return warn(
            "dispatcher", f"its turns fail ({beat.error}); it backs off and tries again", fix
        )
    return replace(held, detail=f"{held.detail}; {beat.released} released by this holder")


def check_scheduler(probe: Probe) -> Result:
    if why := probe.unavailable("redis"):
        return warn("scheduler", f"not checked: {why}")
    held = _lease("scheduler", probe.redis, SCHEDULER_LEASE_KEY)
    if held is not None:
        return held
    fix = "start threadcast scheduler (one or more: a lease makes one of them act)"
    waiting = _scheduled_work(probe)
    if waiting:
        return fail("scheduler", f"no scheduler is running, and {waiting} wait for one", fix)
    return warn(
        "scheduler",
        "no scheduler is running (nothing is scheduled now, but it also "
        "settles dead workers' claims and re-queues what a lost Redis forgot)",
        fix,
    )


def _lease(name: str, client: redis.Redis, key: str) -> Result | None:
    """The lease's verdict when someone holds it; None when nobody does."""
    pipe = client.pipeline(transaction=False)
    pipe.get(key)
    pipe.pttl(key)
    raw, ttl_ms = pipe.execute()
    if raw is None:
        return None
    holder = raw.decode() if isinstance(raw, bytes) else str(raw)
    if ttl_ms < 0:  # nothing renews or expires it: no live holder can take over
        return fail(
            name,
            f"its lease {key} (held by {holder}) has no TTL",
            f"delete it (redis-cli DEL {key}): a live {name} takes it again",
        )
    return ok(
        name, f"alive: {holder} holds the lease ({ttl_ms / 1000:.1f} s left, renewed while it runs)"
    )


def _scheduled_work(probe: Probe) -> str | None:
    """What waits for a scheduler ("3 scheduled broadcasts, 1 active schedule"), if anything;
    an unusable ledger says so (doctor cannot tell)."""
    if probe.unavailable("ledger"):
        return None
    assert probe.engine is not None
    with probe.engine.connect() as conn:
        broadcasts = conn.execute(
            select(func.count(func.distinct(deliveries.c.broadcast_id))).where(
                deliveries.c.state == "scheduled"
            )
        ).scalar_one()
        active = conn.execute(
            select(func.count()).select_from(schedules).where(schedules.c.state == "active")
        ).scalar_one()
    found = [
        f"{broadcasts} scheduled broadcasts" if broadcasts else "",
        f"{active} active schedules" if active else "",
    ]
    return ", ".join(f for f in found if f) or None


# --- running and reporting ---------------------------------------------------------------------

Check = Callable[[Probe], Result | list[Result]]
CHECKS: tuple[Check, ...] = (
    check_redis,
    check_memory_policy,
    check_clock,
    check_ledger,
    check_cache_key,
    check_tenants,
    check_graph,
    check_identity,
    check_dispatcher,
    check_scheduler,
)


def diagnose(checks: Sequence[Check] = CHECKS, *, settings: Settings | None = None) -> list[Result]:
    """Every check, in order, with no secret in any line; ``settings``: check these (the API
    process's, GET /v1/health) instead of loading them from the environment."""
    settings, results = check_settings(settings)
    if settings is None:
        return [_scrubbed(r, ()) for r in results]
    with Probe.open(settings) as probe:
        for check in checks:
            results += _run(check, probe)
    literals = [*secret_literals(settings), *_url_passwords(settings)]
    return [_scrubbed(r, literals) for r in results]


def _run(check: Check, probe: Probe) -> list[Result]:
    try:
        found = check(probe)
    except Exception as exc:  # a check that breaks must not hide the ones after it
        name = check.__name__.removeprefix("check_").replace("_", " ")
        return [
            fail(
                name,
                f"the check itself failed ({type(exc).__name__}: {exc})",
                "run doctor again; if it persists, report it with this line",
            )
        ]
    return found if isinstance(found, list) else [found]


def _url_passwords(settings: Settings) -> list[str]:
    found = [urlsplit(settings.redis_url).password, make_url(settings.database_url).password]
    return [p for p in found if p and len(p) >= _MIN_PASSWORD]


def _scrubbed(result: Result, literals: Sequence[str]) -> Result:
    def clean(text: str) -> str:
        return redact(mask_urls(text), literals)

    return replace(
        result, detail=clean(result.detail), fix=None if result.fix is None else clean(result.fix)
    )


_LABELS = {Status.OK: "ok", Status.WARN: "warn", Status.FAIL: "FAIL"}


def render(results: Sequence[Result], *, verbose: bool = False) -> str:
    """One line per check; with many tenants, the ones that are fine fold into one line."""
    shown = list(results) if verbose else _folded(results)
    lines = [_line(r) for r in shown]
    counts = {s: sum(r.status is s for r in results) for s in Status}
    verdict = "fix the FAIL lines before sending" if counts[Status.FAIL] else "ready"
    lines.append(
        f"doctor: {counts[Status.FAIL]} failed, {counts[Status.WARN]} warnings, "
        f"{counts[Status.OK]} ok: {verdict}"
    )
    return "\n".join(lines)


def _line(result: Result) -> str:
    fix = f" -> {result.fix}" if result.fix else ""
    return f"{_LABELS[result.status]:<4}  {result.name}: {result.detail}{fix}"


def _folded(results: Sequence[Result]) -> list[Result]:
    fine = [r for r in results if r.name.startswith("tenant ") and r.status is Status.OK]
    if len(fine) < 2:
        return list(results)
    first = results.index(fine[0])
    rest = [r for r in results if r not in fine]
    summary = ok(
        "tenants",
        f"{len(fine)} signed in with the Graph scope and a refresh token (--verbose lists each)",
    )
    return [*rest[:first], summary, *rest[first:]]


def dumps(results: Sequence[Result]) -> str:
    """One JSON object: ``ok`` (no failure), counts, and every check."""
    counts = {s.value: sum(r.status is s for r in results) for s in Status}
    checks = [
        {"name": r.name, "status": r.status.value, "detail": r.detail, "fix": r.fix}
        for r in results
    ]
    return json.dumps({"ok": not failed(results), "counts": counts, "checks": checks}, indent=2)
