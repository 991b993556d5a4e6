"""Serving the metrics: the registry to scrape, the text format, a small HTTP server.

Single process (the API, a test): the process registry. Several processes (Celery's
prefork children, several API workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory *before the processes start*; each process then writes its values to files there
and a scrape merges them. The parent calls :func:`prepare_multiprocess_dir` once at start and
:func:`process_exited` when a child ends.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    exposition,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

from threadcast.metrics.definitions import MULTIPROC_ENV
from threadcast.settings import Settings


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir() -> None:
    """Create the multiprocess directory and drop files of earlier runs (parent only)."""
    path = multiprocess_dir()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """A child process ended: its live gauges stop counting (multiprocess mode only)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def scrape_registry(*extra: Collector) -> CollectorRegistry:
    """What a scrape of this process reports: threadcast's metrics plus ``extra`` collectors."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    else:
        registry.register(REGISTRY)
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition in the format the scraper asked for, and its content type."""
    encoder, content_type = exposition.choose_encoder(accept or "")
    return encoder(registry), content_type


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(settings: Settings, *extra: Collector, host: str = "0.0.0.0") -> MetricsServer | None:  # noqa: S104
    """Serve ``/metrics`` on ``THREADCAST_METRICS_PORT`` in a daemon thread; None if unset.

    Worker: call it in the Celery parent process only (``celeryd_init``/``worker_init``),
    never in a prefork child. Scheduler: once at start.
    """
    if settings.metrics_port is None:
        return None
    prepare_multiprocess_dir()
    server, thread = start_http_server(
        settings.metrics_port, addr=host, registry=scrape_registry(*extra)
    )
    return MetricsServer(server, thread)
