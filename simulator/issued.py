"""Every token the simulator has issued, for leak tests: ``GET /_sim/tokens``.

A leak test greps logs, ledgers and output for these exact strings. So the list covers the
whole life of the process, and ``POST /_sim/reset`` deliberately leaves it alone.
"""

from __future__ import annotations


class IssuedTokens:
    def __init__(self) -> None:
        self._access: list[tuple[str, str]] = []
        self._refresh: list[tuple[str, str]] = []

    def access_token(self, tenant_id: str, token: str) -> None:
        self._access.append((tenant_id, token))

    def refresh_token(self, tenant_id: str, token: str) -> None:
        self._refresh.append((tenant_id, token))

    def to_json(self, tenant_id: str | None = None) -> dict[str, list[str]]:
        """In issue order; only the tenant's when ``tenant_id`` is given."""
        return {
            "access_tokens": _of(self._access, tenant_id),
            "refresh_tokens": _of(self._refresh, tenant_id),
        }


def _of(issued: list[tuple[str, str]], tenant_id: str | None) -> list[str]:
    return [token for tenant, token in issued if tenant_id is None or tenant == tenant_id]
