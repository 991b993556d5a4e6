"""The ledger: the durable truth about broadcasts, deliveries and attempts.

``Ledger.open(url)`` migrates the schema to the version this code knows and gives the
three books: :class:`BroadcastBook` (producer, status), :class:`DeliveryBook` (worker)
and :class:`TokenCacheRows` (the encrypted token caches' durable copy).
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from threadcast.errors import LedgerError
from threadcast.ledger import migrations
from threadcast.ledger.broadcasts import BroadcastBook, BroadcastInfo, ErrorLine
from threadcast.ledger.deliveries import Claim, DeliveryBook, Outcome, Refusal
from threadcast.ledger.engine import make_engine
from threadcast.ledger.states import CLAIMABLE, FINAL, DeliveryState
from threadcast.ledger.token_rows import TokenCacheRows

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "BroadcastBook",
    "BroadcastInfo",
    "Claim",
    "DeliveryBook",
    "DeliveryState",
    "ErrorLine",
    "Ledger",
    "Outcome",
    "Refusal",
    "TokenCacheRows",
]


class Ledger:
    """An open ledger database and its books."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.broadcasts = BroadcastBook(engine)
        self.deliveries = DeliveryBook(engine)
        self.token_caches = TokenCacheRows(engine)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Ledger:
        """Connect to ``url`` and bring its schema up to date (safe to race with others)."""
        ledger = cls(make_engine(url))
        if migrate:
            ledger.migrate()
        return ledger

    def migrate(self) -> list[int]:
        try:
            with self.engine.begin() as conn:
                return migrations.upgrade(conn)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot migrate the ledger: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()
