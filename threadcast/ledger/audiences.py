"""Saved audiences: a name for a list of audience specs and/or explicit targets.

The book stores what it is given (a definition already checked by the producer,
``producer/audiences.py``) and hands it back; what an audience resolves to is asked of Graph
at send time, never stored here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from threadcast.ledger.engine import READ_ONLY
from threadcast.ledger.schema import audiences


@dataclass(frozen=True)
class SavedAudience:
    name: str
    audiences: tuple[str, ...]  # audience specs, as written (``tenant=T;channel=General``)
    targets: tuple[dict[str, str], ...]  # explicit {"tenant", "group", "channel"}
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "audiences": list(self.audiences),
            "targets": [dict(t) for t in self.targets],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class AudienceBook:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(
        self,
        name: str,
        specs: list[str],
        targets: list[dict[str, str]],
        now: datetime,
    ) -> bool:
        """Store ``name`` (replacing what it held); True if it is new."""
        definition = json.dumps({"audiences": specs, "targets": targets}, separators=(",", ":"))
        with self._engine.begin() as conn:
            found = conn.execute(select(audiences.c.name).where(audiences.c.name == name))
            if found.first() is None:
                conn.execute(
                    insert(audiences).values(
                        name=name, definition=definition, created_at=now, updated_at=now
                    )
                )
                return True
            conn.execute(
                update(audiences)
                .where(audiences.c.name == name)
                .values(definition=definition, updated_at=now)
            )
            return False

    def get(self, name: str) -> SavedAudience | None:
        query = select(audiences).where(audiences.c.name == name)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            row = conn.execute(query).first()
        return None if row is None else _saved(row)

    def all(self) -> list[SavedAudience]:
        query = select(audiences).order_by(audiences.c.name)
        with self._engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            return [_saved(row) for row in conn.execute(query).all()]

    def delete(self, name: str) -> bool:
        """Forget ``name``; False if there was none."""
        with self._engine.begin() as conn:
            gone = conn.execute(delete(audiences).where(audiences.c.name == name))
        return bool(gone.rowcount)


def _saved(row: Any) -> SavedAudience:
    definition = json.loads(row.definition)
    return SavedAudience(
        name=row.name,
        audiences=tuple(definition.get("audiences", [])),
        targets=tuple(definition.get("targets", [])),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
