"""The ledger copy of each tenant's encrypted token cache (Redis holds the working copy)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import token_caches


class TokenCacheRows:
    """Ciphertext only: the ledger never sees a token in the clear."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, tenant: str, ciphertext: str, now: datetime) -> None:
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(token_caches)
                .where(token_caches.c.tenant_id == tenant)
                .values(ciphertext=ciphertext, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(token_caches).values(
                        tenant_id=tenant, ciphertext=ciphertext, updated_at=now
                    )
                )

    def load(self, tenant: str) -> str | None:
        query = select(token_caches.c.ciphertext).where(token_caches.c.tenant_id == tenant)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def tenants(self) -> list[str]:
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return list(conn.execute(select(token_caches.c.tenant_id)).scalars())

    def delete(self, tenant: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(token_caches).where(token_caches.c.tenant_id == tenant))
