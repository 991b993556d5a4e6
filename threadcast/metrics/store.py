"""Gauges computed when scraped, from the ledger and Redis (so they survive any restart).

Served by the HTTP API only: every worker exposing the same ledger-wide numbers would make
sums across instances wrong.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from threadcast.constants import QUEUE
from threadcast.ledger import DeliveryQueries
from threadcast.metrics.definitions import PREFIX


class StoreCollector(Collector):
    """``threadcast_deliveries{state,tenant}``, ``threadcast_queue_depth{queue}`` and whether
    the ledger and Redis answered (``threadcast_ledger_up``, ``threadcast_redis_up``)."""

    def __init__(self, queries: DeliveryQueries, client: redis.Redis) -> None:
        self._queries = queries
        self._redis = client

    def describe(self) -> list[Metric]:
        return []  # values exist only at scrape time; nothing to check up front

    def collect(self) -> Iterator[Metric]:
        yield from self._deliveries()
        yield from self._queue()

    def _deliveries(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            PREFIX + "deliveries", "Deliveries in the ledger by state and tenant",
            labels=["state", "tenant"],
        )  # fmt: skip
        try:
            for row in self._queries.counts_by_state_and_tenant():
                family.add_metric([row.state, row.tenant], row.count)
            up = 1
        except SQLAlchemyError:
            up = 0  # a scrape must still answer; the up gauge says why numbers are missing
        yield family
        yield GaugeMetricFamily(PREFIX + "ledger_up", "1 if the ledger answered", value=up)

    def _queue(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            PREFIX + "queue_depth", "Messages waiting in the Celery queue", labels=["queue"]
        )
        try:
            family.add_metric([QUEUE], int(self._redis.llen(QUEUE)))
            up = 1
        except redis.RedisError:
            up = 0
        yield family
        yield GaugeMetricFamily(PREFIX + "redis_up", "1 if Redis answered", value=up)
