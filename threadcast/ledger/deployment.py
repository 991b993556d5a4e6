"""Facts about the whole deployment that must outlive Redis, one row per name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import deployment


class DeploymentFacts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> str | None:
        query = select(deployment.c.value).where(deployment.c.name == name)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            found = conn.execute(query).scalar()
        return None if found is None else str(found)

    def put_once(self, name: str, value: str, now: datetime) -> bool:
        """Record ``value`` unless ``name`` already has one; True if this call recorded it.

        First writer wins, on every backend and across hosts: the primary key decides."""
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(deployment).values(name=name, value=value, updated_at=now))
        except IntegrityError:
            return False
        return True
