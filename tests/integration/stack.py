"""Helpers the integration tests share: the simulator's admin API, settings, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from simulator.process import RunningSimulator

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

    def revoke(self, tenant: str) -> None:
        self._http.post(f"/tenants/{tenant}/revoke").raise_for_status()

    def close(self) -> None:
        self._http.close()


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
