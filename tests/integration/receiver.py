"""A real webhook receiver for tests and the bench: an HTTP server on 127.0.0.1 that verifies
every request's Standard Webhooks signature with the ``standardwebhooks`` library (one secret
per path) and keeps what it received. It can be down (not listening) and come up later on the
same port, answer with a status of choice, or answer slowly."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    body: bytes
    event: dict[str, Any]  # the verified, parsed body
    at: float  # time.monotonic()


@dataclass
class Receiver:
    secrets: dict[str, str]  # path -> whsec_ secret
    port: int = 0
    status: int = 204  # what a verified request is answered with
    delay: float = 0.0  # seconds before answering
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why a request did not verify
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.take(self.path, dict(self.headers.items()), body, self)

            def log_message(self, *_args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(
        self, path: str, headers: dict[str, str], body: bytes, handler: BaseHTTPRequestHandler
    ) -> None:
        secret = self.secrets.get(path)
        try:
            if secret is None:
                raise WebhookVerificationError(f"no secret for {path}")
            event = Webhook(secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self._lock:
                self.refused.append(f"{path}: {exc}")
            handler.send_response(400)
            handler.end_headers()
            return
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.received.append(
                Received(path, headers["webhook-id"], body, event, time.monotonic())
            )
        handler.send_response(self.status)
        handler.end_headers()

    def events(self, path: str, kind: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.path == path and (kind is None or r.event["type"] == kind)
            ]

    def by_type(self, path: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for r in self.events(path):
            found[r.event["type"]] = found.get(r.event["type"], 0) + 1
        return found


def dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
