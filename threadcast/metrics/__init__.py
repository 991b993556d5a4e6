"""Prometheus metrics of threadcast: worker, scheduler and API.

Recording (cheap, never raising; see :mod:`threadcast.metrics.recording` for where each is
called): :func:`record_attempt`, :func:`record_throttled`, :func:`observe_limiter_wait`,
:func:`set_parked`, :func:`record_token_refresh`, :func:`record_endpoint_switch`,
:func:`observe_enqueue_to_sent`, and the API's own :func:`record_api_request`,
:func:`record_api_broadcast`, :func:`record_auth_failure`.

Serving: :func:`serve` (a ``/metrics`` HTTP server on ``THREADCAST_METRICS_PORT``, for
workers and the scheduler), :func:`scrape_registry` + :func:`render` (the API's ``/metrics``),
:class:`StoreCollector` (ledger and Redis gauges computed at scrape time). Multiprocess mode:
``PROMETHEUS_MULTIPROC_DIR``, :func:`prepare_multiprocess_dir`, :func:`process_exited`.
The metric names are listed in docs/OPERATIONS.md.
"""

from __future__ import annotations

from threadcast.metrics.definitions import MULTIPROC_ENV
from threadcast.metrics.exposition import (
    MetricsServer,
    prepare_multiprocess_dir,
    process_exited,
    render,
    scrape_registry,
    serve,
)
from threadcast.metrics.recording import (
    observe_enqueue_to_sent,
    observe_limiter_wait,
    record_api_broadcast,
    record_api_request,
    record_attempt,
    record_auth_failure,
    record_endpoint_switch,
    record_throttled,
    record_token_refresh,
    set_parked,
)
from threadcast.metrics.store import HeartbeatCollector, StoreCollector

__all__ = [
    "MULTIPROC_ENV",
    "HeartbeatCollector",
    "MetricsServer",
    "StoreCollector",
    "observe_enqueue_to_sent",
    "observe_limiter_wait",
    "prepare_multiprocess_dir",
    "process_exited",
    "record_api_broadcast",
    "record_api_request",
    "record_attempt",
    "record_auth_failure",
    "record_endpoint_switch",
    "record_throttled",
    "record_token_refresh",
    "render",
    "scrape_registry",
    "serve",
    "set_parked",
]
