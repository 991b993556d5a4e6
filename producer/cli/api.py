"""``threadcast api``: serve the HTTP API (docs/API.md)."""

from __future__ import annotations

import argparse
from typing import Any

from threadcast.settings import load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(commands: Any) -> None:
    api = commands.add_parser("api", help="serve the HTTP API (needs THREADCAST_API_KEYS)")
    api.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    api.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    api.set_defaults(run=_api)


def _api(args: argparse.Namespace, _rest: list[str]) -> int:
    from producer.api.server import serve  # FastAPI and uvicorn load only for this command

    serve(load_settings(), args.host, args.port)
    return 0
