"""A private ``redis-server`` for ``make demo``/``make test`` on machines without one running.

Only for rehearsals and tests: production points ``THREADCAST_REDIS_URL`` at a real Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from threadcast.errors import BrokerError

INSTALL_HINT = (
    "redis-server is not installed: install it (Debian/Ubuntu: apt-get install redis-server; "
    "macOS: brew install redis) or set THREADCAST_REDIS_URL to a reachable Redis"
)


@dataclass
class PrivateRedis:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private(db: int = 0, timeout: float = 15.0) -> PrivateRedis:
    """Start ``redis-server`` on a free loopback port with nothing kept on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BrokerError(INSTALL_HINT)
    directory = Path(tempfile.mkdtemp(prefix="threadcast-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PrivateRedis(f"redis://127.0.0.1:{port}/{db}", process, directory)
    deadline = time.monotonic() + timeout
    while not reachable(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            log = (directory / "redis.log").read_text(errors="replace")[-2000:]
            server.stop()
            raise BrokerError(f"redis-server did not start on port {port}: {log}")
        time.sleep(0.05)
    return server
