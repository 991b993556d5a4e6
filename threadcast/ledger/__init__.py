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
from threadcast.ledger.audiences import AudienceBook, SavedAudience
from threadcast.ledger.audit import AuditRecord, AuditTrail
from threadcast.ledger.broadcasts import BroadcastBook, BroadcastInfo, ErrorLine, WaitLine
from threadcast.ledger.changes import ChangeBook
from threadcast.ledger.deliveries import (
    Claim,
    DeliveryBook,
    Finished,
    Outcome,
    Refusal,
    StoredMessage,
)
from threadcast.ledger.deployment import DeploymentFacts
from threadcast.ledger.engine import make_engine
from threadcast.ledger.launches import LaunchBook
from threadcast.ledger.queries import DeliveryPage, DeliveryQueries, DeliveryRow, StateCount
from threadcast.ledger.schedules import ScheduleBook
from threadcast.ledger.states import CLAIMABLE, FINAL, DeliveryState
from threadcast.ledger.token_rows import TokenCacheRows
from threadcast.ledger.webhooks import WebhookBook

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "AudienceBook",
    "AuditRecord",
    "AuditTrail",
    "BroadcastBook",
    "BroadcastInfo",
    "ChangeBook",
    "Claim",
    "DeliveryBook",
    "DeliveryPage",
    "DeliveryQueries",
    "DeliveryRow",
    "DeliveryState",
    "DeploymentFacts",
    "ErrorLine",
    "Finished",
    "LaunchBook",
    "Ledger",
    "Outcome",
    "Refusal",
    "SavedAudience",
    "ScheduleBook",
    "StateCount",
    "StoredMessage",
    "TokenCacheRows",
    "WaitLine",
]


class Ledger:
    """An open ledger database and its books."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.broadcasts = BroadcastBook(engine)
        self.deliveries = DeliveryBook(engine)
        self.token_caches = TokenCacheRows(engine)
        self.audit = AuditTrail(engine)
        self.schedules = ScheduleBook(engine)  # recurring schedules and their occurrences
        self.launches = LaunchBook(engine)  # one-off scheduled broadcasts launched when due
        self.deployment = DeploymentFacts(engine)  # e.g. the switch to Graph's v1.0 endpoint
        self.audiences = AudienceBook(engine)  # saved audiences (threadcast audience save)
        self.changes = ChangeBook(engine)  # edits and recalls of sent broadcasts
        self.webhooks = WebhookBook(engine)  # signed webhook events, deliveries, endpoints

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
