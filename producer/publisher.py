"""Handing deliveries to the workers: into the dispatch gate on Redis.

The producer never talks to Celery or imports the worker: it puts deliveries where they
wait for their rate-limit turn (threadcast.dispatch), and the workers' dispatcher lets them
out as Celery messages.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Gate
from threadcast.errors import BrokerError


class Publisher:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._gate = Gate(self._redis)

    def publish(self, messages: Iterable[DeliveryMessage]) -> int:
        """Enqueue every message; return how many. Raises BrokerError if Redis is gone."""
        try:
            return self._gate.enqueue(messages)
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}. The deliveries are safe in the ledger: send the same broadcast id "
                "again, or let `threadcast scheduler` re-queue them"
            ) from exc

    def close(self) -> None:
        self._redis.close()
