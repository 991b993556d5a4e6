"""Helpers the integration tests share: the simulator's admin API, settings, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from sqlalchemy import text

from simulator.process import RunningSimulator
from threadcast.ledger import Ledger

CLIENT_ID = "4a5f0c3e-5a47-4c8e-9b5e-5d0f3c2a9e11"


class SimAdmin:
    def __init__(self, sim: RunningSimulator) -> None:
        self._http = httpx.Client(base_url=sim.admin_url, verify=sim.ssl_context(), timeout=10)

    def stats(self) -> dict[str, Any]:
        return dict(self._http.get("/stats").raise_for_status().json())

    def posts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self._http.get("/posts", params={"offset": len(found), "limit": 1000})
            batch = page.raise_for_status().json()["posts"]
            if not batch:
                return found
            found += batch

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    def revoke(self, tenant: str, access_tokens_only: bool = False) -> None:
        """Sign the tenant out at the identity platform; or, with ``access_tokens_only``,
        make Graph refuse (401) its access tokens while its refresh token stays good."""
        params = {"access_tokens_only": "true"} if access_tokens_only else {}
        self._http.post(f"/tenants/{tenant}/revoke", params=params).raise_for_status()

    def token_calls(self, tenant: str) -> dict[str, int]:
        """The tenant's token-endpoint calls by grant, plus invalid_grant (0 when none)."""
        calls = self.stats()["token_calls"].get(tenant, {})
        names = ("device_code", "refresh_token", "invalid_grant", "with_client_secret")
        return {name: int(calls.get(name, 0)) for name in names}

    def issued_tokens(self, tenant: str | None = None) -> list[str]:
        """Every access and refresh token the simulator issued (to ``tenant``)."""
        params = {"tenant": tenant} if tenant else {}
        found = self._http.get("/tokens", params=params).raise_for_status().json()
        return [*found["access_tokens"], *found["refresh_tokens"]]

    def configure(self, **knobs: object) -> None:
        self._http.post("/config", json=knobs).raise_for_status()

    def consent(
        self, tenant: str, *, revoke: list[str] | None = None, grant: list[str] | None = None
    ) -> None:
        body = {"revoke": revoke or [], "grant": grant or []}
        self._http.post(f"/tenants/{tenant}/consent", json=body).raise_for_status()

    def membership(self, tenant: str, team: str, member: bool) -> None:
        self._http.post(
            f"/tenants/{tenant}/teams/{team}/membership", json={"member": member}
        ).raise_for_status()

    def close(self) -> None:
        self._http.close()


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


# Kept up by the running dispatcher and workers on their own (sliding logs that empty and
# expire, the dispatcher's lease and heartbeat, daily counters): not something a producer
# writes.
_TRANSIENT = (
    b"threadcast:{dispatch}:log:",
    b"threadcast:{dispatch}:day:",
    b"threadcast:{dispatch}:leader",
    b"threadcast:dispatcher:heartbeat",
    b"_kombu.",
)


def footprint(ledger: Ledger, client: redis.Redis) -> tuple[object, ...]:
    """What a send could have written: ledger rows, and every Redis key a producer writes
    (the gate's queues and indexes, token caches, the Celery queue) with its size."""
    with ledger.engine.connect() as conn:
        rows = tuple(
            conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
            for table in ("broadcasts", "deliveries", "attempts", "token_caches")
        )
    keys = sorted(k for k in client.keys("*") if not k.startswith(_TRANSIENT))
    return rows, tuple((k, _size(client, k)) for k in keys)


def _size(client: redis.Redis, key: bytes) -> int:
    measure = {
        b"list": client.llen,
        b"zset": client.zcard,
        b"hash": client.hlen,
        b"set": client.scard,
        b"string": client.strlen,
    }
    kind = client.type(key)
    return int(measure[kind](key)) if kind in measure else 0
