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

from threadcast import heartbeat
from threadcast.constants import QUEUE
from threadcast.ledger import DeliveryQueries
from threadcast.metrics.definitions import PREFIX


class StoreCollector(Collector):
    """``threadcast_deliveries{state,tenant}``, ``threadcast_queue_depth{queue}`` and whether
    the ledger and Redis answered (``threadcast_ledger_up``, ``threadcast_redis_up``)."""

    def __init__(self, queries: DeliveryQueries, client: redis.Redis) -> None:
        self._queries = queries
        self._redis = client
        self._heartbeat = HeartbeatCollector(client)

    def describe(self) -> list[Metric]:
        return []  # values exist only at scrape time; nothing to check up front

    def collect(self) -> Iterator[Metric]:
        yield from self._deliveries()
        yield from self._queue()
        yield from self._heartbeat.collect()

    def _deliveries(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            PREFIX + "deliveries",
            "Deliveries in the ledger by state and tenant",
            labels=["state", "tenant"],
        )
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


class HeartbeatCollector(Collector):
    """``threadcast_dispatcher_up`` (1 while some worker's dispatcher turns: its heartbeat is
    fresh), ``threadcast_dispatcher_heartbeat_age_seconds`` and
    ``threadcast_dispatcher_errors`` (1 while its last turn failed). Served by the API and by
    every worker: the same cluster-wide values, so aggregate with ``max``, not ``sum``."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            reading = heartbeat.read(self._redis)
        except redis.RedisError:
            return  # redis_up (API) or the scrape's gap says so; nothing to claim here
        up = 0 if reading is None or reading.stale else 1
        yield GaugeMetricFamily(
            PREFIX + "dispatcher_up",
            "1 if a dispatcher's heartbeat is fresh (it turned within "
            f"{heartbeat.STALE_AFTER_SECONDS:g} s)",
            value=up,
        )
        if reading is not None:
            yield GaugeMetricFamily(
                PREFIX + "dispatcher_heartbeat_age_seconds",
                "Seconds since the dispatcher's last heartbeat, on Redis's clock",
                value=reading.age,
            )
            yield GaugeMetricFamily(
                PREFIX + "dispatcher_failing",
                "1 while the dispatcher's last turn failed (it backs off and tries again)",
                value=0 if reading.beat.error is None else 1,
            )
