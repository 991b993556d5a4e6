"""``threadcast api``: the app behind uvicorn."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from producer.api.app import create_app
from threadcast.logs import configure_logging
from threadcast.settings import Settings

log = logging.getLogger("threadcast.api")

#: Longer than common client pools keep idle connections, so a client never reuses a
#: connection at the moment the server closes it.
KEEP_ALIVE_SECONDS = 75


def build_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # our handler (configure_logging) formats uvicorn's records too
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return uvicorn.Server(config)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM, then exit normally (status 0)."""
    server = build_server(settings, host, port)  # a bad setting stops us before any output
    configure_logging(settings)
    # uvicorn shuts down gracefully, then re-raises the signal into the handler it found:
    # with this one the process ends normally instead of dying by the signal.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stopped)
    server.run()


def _stopped(signum: int, _frame: FrameType | None) -> None:
    log.info("stopped by signal %d", signum)
