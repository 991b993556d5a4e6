"""``threadcast worker``: one Celery worker process per CPU, kept running.

A worker process holds hundreds of posts in flight on one asyncio loop, but its Python code
(claims, permits, the HTTP client, Celery) runs under one interpreter lock: measured here,
one process is bound at about one CPU (docs/PERFORMANCE.md). So ``threadcast worker`` runs
``THREADCAST_WORKER_PROCESSES`` of them (default: the CPUs), each a complete Celery worker
with its threads, and supervises them as Celery's prefork pool would: a process that dies is
started again; SIGTERM or SIGINT is passed to every one (their warm shutdown: in-flight
batches finish and are recorded) and waited for. The command's own pid stands for them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger("threadcast.worker")

_RESTART_PAUSE = 1.0  # seconds before a process that died is started again
_QUICK_DEATHS = 5  # processes dying within _QUICK seconds of their start, in a row: give up
_QUICK = 10.0
_PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        count: int,
        env: Mapping[str, str],
        ready_file: Path | None = None,
    ) -> None:
        self._command = list(command)
        self._count = count
        self._env = dict(env)
        self._ready_file = ready_file
        self._children: dict[int, _Child] = {}
        self._stopping = False
        self._quick_deaths = 0

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self._forward)
        for index in range(self._count):
            self._start(index)
        self._announce_when_ready()
        while self._children:
            # Reaped here only (never by Popen.poll/send_signal), so every end is seen once.
            pid, status = os.wait()
            child = next((c for c in self._children.values() if c.process.pid == pid), None)
            if child is not None:
                child.process.returncode = os.waitstatus_to_exitcode(status)
                self._ended(child, child.process.returncode)
        return 1 if self._quick_deaths >= _QUICK_DEATHS else 0

    def _start(self, index: int) -> None:
        env = dict(self._env)
        if self._ready_file is not None:
            env["THREADCAST_WORKER_READY_FILE"] = str(self._child_ready(index))
        port = env.get("THREADCAST_METRICS_PORT")
        if port and port.isdigit():
            env["THREADCAST_METRICS_PORT"] = str(int(port) + index)  # one port per process
        command = [*self._command, "-n", f"threadcast{index}-{os.getpid()}@%h"]
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, preexec_fn=_stop_with_parent
        )
        self._children[index] = _Child(index, process)

    def _ended(self, child: _Child, code: int) -> None:
        del self._children[child.index]
        if self._stopping:
            return
        quick = time.monotonic() - child.started < _QUICK
        self._quick_deaths = self._quick_deaths + 1 if quick else 0
        if self._quick_deaths >= _QUICK_DEATHS:
            log.error(
                "worker process %d keeps dying at start (exit %d): stopping", child.index, code
            )
            self._forward(signal.SIGTERM, None)
            return
        log.warning("worker process %d ended (exit %d): starting it again", child.index, code)
        time.sleep(_RESTART_PAUSE)
        self._start(child.index)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        # Every process gets the same stop; Celery's own rules (warm, then cold on a second
        # signal) apply in each.
        self._stopping = True
        for child in self._children.values():
            with contextlib.suppress(ProcessLookupError):  # os.kill: it does not reap
                os.kill(child.process.pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    def _child_ready(self, index: int) -> Path:
        assert self._ready_file is not None
        return self._ready_file.with_name(f"{self._ready_file.name}.{index}")

    def _announce_when_ready(self) -> None:
        """Write the command's own ready file once every process consumes."""
        if self._ready_file is None:
            return
        while self._children and not self._stopping:
            if all(self._child_ready(i).exists() for i in self._children):
                self._ready_file.write_text(str(os.getpid()))
                return
            if _any_ended(self._children.values()):
                return  # one died before it was ready: the wait loop restarts or gives up
            time.sleep(0.1)


def _any_ended(children: Iterable[_Child]) -> bool:
    """Whether a child has ended, without reaping it (the wait loop does that)."""
    for child in children:
        with contextlib.suppress(ChildProcessError):
            info = os.waitid(os.P_PID, child.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                return True
    return False


def _stop_with_parent() -> None:
    """In the child, before it runs Celery: a SIGTERM (a warm stop) when the supervisor dies,
    even by SIGKILL, so no worker process is left running unsupervised (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the processes outlive a killed supervisor
