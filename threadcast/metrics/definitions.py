"""The metric objects, created once per process on first use (never at import time).

prometheus_client keeps them in its process registry; in multiprocess mode (the
``PROMETHEUS_MULTIPROC_DIR`` environment variable, read by prometheus_client when it is
first imported) their values live in files that the scraping process merges.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "threadcast_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Limiter waits are short (the gate hands out permits a few ms apart) but may reach minutes.
LIMITER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: From enqueue to sent: seconds when idle, hours for a large broadcast under the daily quota.
LATENCY_BUCKETS = (
    0.5,
    1,
    2,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
)


@dataclass(frozen=True)
class Metrics:
    attempts: Counter
    throttled: Counter
    limiter_wait: Histogram
    parked: Gauge
    token_refreshes: Counter
    endpoint_switches: Counter
    enqueue_to_sent: Histogram
    api_requests: Counter
    api_broadcasts: Counter
    api_auth_failures: Counter


@functools.cache
def metrics() -> Metrics:
    """This process's metric objects."""
    where = os.environ.get(MULTIPROC_ENV)
    if where:  # multiprocess values are files there, opened as the metrics are made
        Path(where).mkdir(parents=True, exist_ok=True)
    return Metrics(
        attempts=Counter(
            PREFIX + "attempts",
            "Graph posts by HTTP status ('none': no answer)",
            ["tenant", "status", "outcome"],
        ),
        throttled=Counter(
            PREFIX + "throttled",
            "429 Too Many Requests answers, by the limiter scope they hit",
            ["scope"],
        ),
        limiter_wait=Histogram(
            PREFIX + "limiter_wait_seconds",
            "How long a delivery waited for a rate-limit permit",
            buckets=LIMITER_BUCKETS,
        ),
        parked=Gauge(
            PREFIX + "parked_deliveries",
            "Deliveries parked in Redis until a time (retry, Retry-After, quota)",
            multiprocess_mode="mostrecent",
        ),
        token_refreshes=Counter(
            PREFIX + "token_refreshes", "Delegated access-token refreshes", ["tenant", "result"]
        ),
        endpoint_switches=Counter(
            PREFIX + "endpoint_switches",
            "Switches of the deployment from Graph's removed beta "
            "chatthreads endpoint to v1.0 channel messages (made by this process)",
            ["to"],
        ),
        enqueue_to_sent=Histogram(
            PREFIX + "enqueue_to_sent_seconds",
            "From a delivery's enqueueing (or its send time) to Graph accepting it",
            buckets=LATENCY_BUCKETS,
        ),
        api_requests=Counter(
            PREFIX + "api_requests",
            "HTTP API requests by route template and status",
            ["method", "route", "status"],
        ),
        api_broadcasts=Counter(
            PREFIX + "api_broadcasts",
            "Broadcasts accepted by the HTTP API, by API key name",
            ["source", "result"],
        ),
        api_auth_failures=Counter(
            PREFIX + "api_auth_failures", "HTTP API requests refused for a missing or wrong key"
        ),
    )
