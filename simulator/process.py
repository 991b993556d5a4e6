"""Starting the simulator as a child process, for tests, demos and benchmarks.

    sim = simulator.process.start(tmp_path, device_approve_delay=0.5)
    try:
        ...  # sim.graph_url, sim.authority_host, sim.ca_bundle, sim.admin_url
    finally:
        sim.stop()

:func:`start` returns once the simulator listens (it waits for the ready file), or raises
:class:`~simulator.errors.StartupError` carrying the child's output.
"""

from __future__ import annotations

import atexit
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from simulator.errors import StartupError

LOG_FILE = "simulator.log"
_POLL_SECONDS = 0.02
_LOG_TAIL_CHARS = 4000


@dataclass
class RunningSimulator:
    """A simulator child process that is listening."""

    graph_url: str
    authority_host: str
    admin_url: str
    ca_bundle: Path
    pid: int
    state_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] = field(repr=False)

    def authority(self, tenant: str) -> str:
        """The MSAL ``authority`` for a tenant (use with ``instance_discovery=False``)."""
        return f"{self.authority_host}/{tenant}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the simulator's CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate and wait (kill if it will not go); safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    state_dir: str | os.PathLike[str],
    *,
    host: str | None = None,
    port: int = 0,
    device_approve_delay: float | None = None,
    token_lifetime: int | None = None,
    refresh_grace: float | None = None,
    log_level: str | None = None,
    test_clock: bool = False,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> RunningSimulator:
    """Run ``python -m simulator`` with these flags (None: the CLI's default) until it listens.

    ``test_clock`` adds ``--test-clock``: a test then moves the simulator's clock forward
    (``POST {admin_url}/clock``) instead of sleeping."""
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    ready_file = state / f"ready-{uuid.uuid4().hex}.json"
    flags = {
        "--port": port,
        "--state-dir": state,
        "--ready-file": ready_file,
        "--host": host,
        "--device-approve-delay": device_approve_delay,
        "--token-lifetime": token_lifetime,
        "--refresh-grace": refresh_grace,
        "--log-level": log_level,
    }
    switches = ["--test-clock"] if test_clock else []
    argv = [sys.executable, "-m", "simulator", *_flag_args(flags), *switches, *extra_args]
    log_path = state / LOG_FILE
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_child_env(env)
    )
    try:
        ready = _wait_for_ready(process, ready_file, log_path, timeout)
    except BaseException:
        _abandon(process, log)
        raise
    sim = RunningSimulator(
        graph_url=str(ready["graph_url"]),
        authority_host=str(ready["authority_host"]),
        admin_url=str(ready["admin_url"]),
        ca_bundle=Path(str(ready["ca_bundle"])),
        pid=process.pid,
        state_dir=state,
        log_path=log_path,
        process=process,
        _log=log,
    )
    atexit.register(sim.stop)  # a crashed test run must not leave simulators behind
    return sim


def _flag_args(flags: Mapping[str, object]) -> list[str]:
    return [
        part for flag, value in flags.items() if value is not None for part in (flag, str(value))
    ]


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The child must import this very ``simulator`` package, installed or not."""
    child = dict(os.environ if env is None else env)
    package_root = str(Path(__file__).resolve().parent.parent)
    python_path = child.get("PYTHONPATH")
    child["PYTHONPATH"] = (
        f"{package_root}{os.pathsep}{python_path}" if python_path else package_root
    )
    return child


def _wait_for_ready(
    process: subprocess.Popen[bytes], ready_file: Path, log_path: Path, timeout: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            ready: dict[str, object] = json.loads(ready_file.read_text())
            return ready
        if process.poll() is not None:
            raise StartupError(
                f"the simulator exited with code {process.returncode} before it was ready; "
                f"its output ({log_path}):\n{_tail(log_path)}"
            )
        time.sleep(_POLL_SECONDS)
    raise StartupError(
        f"the simulator was not ready within {timeout:g} s; its output ({log_path}):\n"
        f"{_tail(log_path)}"
    )


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]


def _abandon(process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    process.kill()
    process.wait()
    log.close()
