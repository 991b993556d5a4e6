"""The HTTP API served for real by uvicorn, in a thread of the test process, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from producer.api import create_app
from threadcast.settings import Settings


@dataclass
class RunningApi:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the API server did not stop"


def start_api(settings: Settings, timeout: float = 30.0) -> RunningApi:
    # Bound before uvicorn starts: the port is ours, no race with another process.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    return RunningApi(f"http://127.0.0.1:{port}", server, thread)
