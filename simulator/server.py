"""Serving the app: bind, run uvicorn (uvloop + httptools) over TLS, announce readiness."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from simulator.app import build_app
from simulator.config import SimConfig
from simulator.dropping import AbortableHttpToolsProtocol
from simulator.errors import StartupError
from simulator.tls import prepare_tls

logger = logging.getLogger(__name__)
_GRACEFUL_SHUTDOWN_SECONDS = 1
# Longer than most clients' pool idle timeout, so a client never reuses a connection that we
# are closing at that very moment (a race real Graph, with long keep-alives, rarely shows).
_KEEP_ALIVE_SECONDS = 75
_ADVERTISED_FOR_WILDCARD = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What the ready file and the start line tell clients."""

    graph_url: str
    authority_host: str
    admin_url: str
    ca_bundle: str

    @classmethod
    def of(cls, host: str, port: int, ca_bundle: Path) -> Endpoints:
        advertised = _ADVERTISED_FOR_WILDCARD.get(host, host)
        if ":" in advertised:
            advertised = f"[{advertised}]"
        base = f"https://{advertised}:{port}"
        return cls(base, base, f"{base}/_sim", str(ca_bundle.resolve()))

    def ready_json(self) -> dict[str, object]:
        return {
            "graph_url": self.graph_url,
            "authority_host": self.authority_host,
            "admin_url": self.admin_url,
            "ca_bundle": self.ca_bundle,
            "pid": os.getpid(),
        }

    def start_line(self) -> str:
        return (
            f"threadcast simulator ready: graph_url={self.graph_url} "
            f"authority_host={self.authority_host} admin_url={self.admin_url} "
            f"ca_bundle={self.ca_bundle}"
        )


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def write_ready_file(path: Path, payload: dict[str, object]) -> None:
    """Atomically: a reader sees no file or the whole file, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def serve(config: SimConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    files, ssl_context = prepare_tls(config.state_dir, config.host)
    sock = bind(config.host, config.port)
    endpoints = Endpoints.of(config.host, sock.getsockname()[1], files.ca_cert)
    uv_config = uvicorn.Config(
        build_app(config),
        loop="uvloop",
        http=AbortableHttpToolsProtocol,  # httptools, plus a way to cut a connection (faults)
        lifespan="off",
        log_level=config.log_level,
        access_log=config.log_level == "debug",
        server_header=False,
        proxy_headers=False,  # nothing sits in front of us; do not trust X-Forwarded-*
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
        backlog=4096,
        ssl_context_factory=lambda _config, _default: ssl_context,
    )
    server = uvicorn.Server(uv_config)
    # uvicorn re-raises the stop signal into the handler it found once it has shut down
    # gracefully; finding this one, the process then ends normally (exit 0, ready file removed).
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stopped)
    with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
        runner.run(_run(server, sock, endpoints, config.ready_file))


def _stopped(signum: int, frame: FrameType | None) -> None:
    logger.info("stopped by signal %d", signum)


async def _run(
    server: uvicorn.Server, sock: socket.socket, endpoints: Endpoints, ready_file: Path | None
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        _announce(endpoints, ready_file)
    try:
        await serving
    finally:
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def _announce(endpoints: Endpoints, ready_file: Path | None) -> None:
    if ready_file is not None:
        write_ready_file(ready_file, endpoints.ready_json())
    print(endpoints.start_line(), flush=True)
