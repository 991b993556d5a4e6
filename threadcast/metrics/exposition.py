"""Serving the metrics: the registry to scrape, the text format, a small HTTP server.

Single process (the API, a test): the process registry. Several processes (Celery's
prefork children, several API workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory *before the processes start*; each process then writes its values to files there
and a scrape merges them. The parent calls :func:`prepare_multiprocess_dir` once at start and
:func:`process_exited` when a child ends.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    exposition,
    make_wsgi_app,
    multiprocess,
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


#: ``/healthz``: whether this process is healthy, and what it knows (JSON-serialisable).
Health = Callable[[], tuple[bool, dict[str, Any]]]


def serve(
    settings: Settings,
    *extra: Collector,
    host: str = "0.0.0.0",  # noqa: S104
    health: Health | None = None,
) -> MetricsServer | None:
    """Serve ``/metrics`` (and ``/healthz`` when ``health`` is given: 200 or 503 with its
    JSON) on ``THREADCAST_METRICS_PORT`` in a daemon thread; None if unset.

    Worker: call it in the Celery parent process only (``celeryd_init``/``worker_init``),
    never in a prefork child. Scheduler: once at start.
    """
    if settings.metrics_port is None:
        return None
    prepare_multiprocess_dir()
    app = _with_health(make_wsgi_app(scrape_registry(*extra)), health)
    server = make_server(
        host, settings.metrics_port, app, _ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        pass  # a scrape every few seconds is not news


def _with_health(metrics_app: Any, health: Health | None) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if health is None or environ.get("PATH_INFO") != "/healthz":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        try:
            ok, body = health()
        except Exception as exc:  # a health check must answer
            ok, body = False, {"error": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps({"status": "ok" if ok else "failing", **body}).encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [payload]

    return app
