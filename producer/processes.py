"""Starting ``threadcast worker`` processes from Python (demo, rehearsals, tests).

The worker runs as its own process, started through the CLI as an operator would: the
producer never imports the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from threadcast.errors import ThreadcastError


@dataclass
class WorkerProcess:
    name: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] = field(repr=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (Celery's warm shutdown: in-flight tasks finish), then wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)


def start_worker(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    concurrency: int | None = 2,
    extra: Sequence[str] = (),
    timeout: float = 60.0,
    processes: int | None = 1,
) -> WorkerProcess:
    """Run ``threadcast worker`` and return once it consumes (it writes its ready file);
    ``concurrency`` (threads) and ``processes`` None: the worker's own defaults."""
    name = f"threadcast-{uuid.uuid4().hex[:8]}@%h"
    threads = [] if concurrency is None else ["-c", str(concurrency)]
    argv = [
        sys.executable,
        "-m",
        "producer.cli",
        "worker",
        *threads,
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *extra,
    ]
    log = log_path.open("wb")
    ready = log_path.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    child_env = dict(os.environ if env is None else env)
    child_env["THREADCAST_WORKER_READY_FILE"] = str(ready)
    if processes is not None:
        child_env["THREADCAST_WORKER_PROCESSES"] = str(processes)
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env
    )
    worker = WorkerProcess(name, log_path, process, log)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            tail = worker.log_text()[-3000:]
            raise ThreadcastError(f"the worker did not start; its output:\n{tail}")
        time.sleep(0.1)
    return worker
