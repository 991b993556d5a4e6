"""What the API's routes use, opened once when the app starts and closed when it stops."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from fastapi import Request
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text

from producer.client import Producer
from threadcast.ledger import DeliveryQueries, Ledger
from threadcast.metrics import StoreCollector, scrape_registry
from threadcast.settings import Settings


@dataclass
class Services:
    settings: Settings
    producer: Producer
    queries: DeliveryQueries
    metrics: CollectorRegistry
    redis: redis.Redis

    @classmethod
    def open(cls, settings: Settings) -> Services:
        producer = Producer(settings)
        # Bounded waits, one quick retry: a health check or a scrape must answer even when
        # Redis does not (redis-py's default retries take seconds).
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
        )
        queries = DeliveryQueries(producer.ledger.engine)
        registry = scrape_registry(StoreCollector(queries, client))
        return cls(settings, producer, queries, registry, client)

    @property
    def ledger(self) -> Ledger:
        return self.producer.ledger

    def health(self) -> tuple[bool, bool]:
        """Whether the ledger and Redis answer (each failure is expected, not an error)."""
        try:
            with self.ledger.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            ledger_ok = True
        except Exception:
            ledger_ok = False
        try:
            redis_ok = bool(self.redis.ping())
        except Exception:
            redis_ok = False
        return ledger_ok, redis_ok

    def close(self) -> None:
        self.redis.close()
        self.producer.close()


def services(request: Request) -> Services:
    found = request.app.state.services
    assert isinstance(found, Services)
    return found
