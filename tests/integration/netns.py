"""Worker hosts of their own for integration tests: Linux network namespaces on a bridge.

Each host is a network namespace (``ip netns``) whose one interface is a veth pair's end; the
other end is a port of a bridge on this machine that carries the machine's address on the
hosts' private subnet. Services the hosts reach (Redis, the simulator, a relay to PostgreSQL)
listen on that address, so the machine itself reaches them there too.

:meth:`Host.cut` takes the host off the network as a pulled cable or a dead switch port does:
its bridge port goes down, every frame to or from it is dropped, and nothing answers -- no
RST, no ICMP. Connections hang (a connect times out, data waits in retransmission) instead of
being refused. The neighbour (ARP) entries between the machine and each host are static for
that reason: with learned ones the kernel would give up resolving the address after a few
seconds and fail new connections with "No route to host" at once, which a host that dropped
off does not do to its peers. :meth:`Host.restore` plugs it back in.

Names carry the test process's pid, so two test processes (``pytest -n 2``) never meet, and
the subnet is chosen under a file lock among those no interface of this machine uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from producer.processes import WorkerProcess

_LOCK_FILE = Path(tempfile.gettempdir()) / "threadcast-netns.lock"
_SUBNETS = ipaddress.IPv4Network("10.231.0.0/16")  # /24s are taken from it
_NAMESPACE_PREFIX = "threadcast-"  # threadcast-<pid>-<host>


def missing() -> str | None:
    """What this machine lacks to run hosts in network namespaces (None: nothing)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2)"
    if os.geteuid() != 0:
        return "root (to create network namespaces, veth pairs and a bridge)"
    return None


def require() -> None:
    """Skip the test when namespaces cannot be made here -- or fail it in CI, which has to run
    it (the CI machine kind is root with iproute2)."""
    lacking = missing()
    if lacking is None:
        return
    reason = f"hosts in network namespaces need {lacking}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test (CI is set)", pytrace=False)
    pytest.skip(reason)


def ip(*args: str) -> str:
    """Run ``ip ARGS``; its output, or a RuntimeError with what it said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _try_ip(*args: str) -> None:
    with contextlib.suppress(RuntimeError):
        ip(*args)


@dataclass(frozen=True)
class Host:
    """A worker host: a network namespace, plugged into the bridge by ``veth``."""

    name: str
    namespace: str
    veth: str  # the machine's end of the pair (a bridge port); the host's end is its eth0
    address: str

    def cut(self) -> None:
        """The host drops off the network: its bridge port goes down; nothing answers it."""
        ip("link", "set", self.veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.veth, "up")

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the host (``ip netns exec`` replaces itself with it)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def probe(self, address: str, port: int, timeout: float) -> str:
        """Connect from inside the host: ``connected``, ``timeout`` (it hangs, as to a host
        that is gone) or the error (``ConnectionRefusedError``: something answered)."""
        script = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
            "except TimeoutError:\n"
            "    sys.exit('timeout')\n"
            "except OSError as exc:\n"
            "    sys.exit(type(exc).__name__)\n"
            "print('connected')\n"
        )
        done = subprocess.run(
            self.command(sys.executable, "-c", script),
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
        return (done.stdout + done.stderr).strip()


@dataclass
class Network:
    """A bridge carrying this machine's ``address``, and a host per name plugged into it."""

    bridge: str
    address: str  # this machine on the hosts' subnet: where their services listen
    hosts: list[Host] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def create(cls, names: tuple[str, ...] = ("a", "b")) -> Iterator[Network]:
        """Build it; on the way out (even after a failure) every host is plugged back in
        and then everything is deleted. Stop the processes in the hosts before that."""
        pid = os.getpid()
        bridge = f"tcbr{pid}"  # interface names have at most 15 characters
        with contextlib.ExitStack() as cleanup:
            with _locked():
                _remove_leftovers()
                subnet = _free_subnet(pid)
                ip("link", "add", bridge, "type", "bridge")
                cleanup.callback(_try_ip, "link", "del", bridge)
                # A fixed address: a bridge otherwise takes its ports' lowest, which changes
                # as ports come and go, and the hosts' static neighbour entries must hold.
                bridge_mac = _mac(pid, 0)
                ip("link", "set", bridge, "address", bridge_mac)
                address = str(subnet[1])
                ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", bridge)
            ip("link", "set", bridge, "up")
            network = cls(bridge, address)
            for index, name in enumerate(names, start=2):
                host = Host(
                    name, f"{_NAMESPACE_PREFIX}{pid}-{name}", f"tc{pid}{name}", str(subnet[index])
                )
                cleanup.callback(_try_ip, "link", "del", host.veth)
                cleanup.callback(_try_ip, "netns", "del", host.namespace)
                _plug_in(host, bridge, bridge_mac, address, subnet.prefixlen)
                network.hosts.append(host)
            cleanup.callback(network.restore_all)  # runs first
            yield network

    def restore_all(self) -> None:
        for host in self.hosts:
            _try_ip("link", "set", host.veth, "up")


def _plug_in(host: Host, bridge: str, bridge_mac: str, address: str, prefix: int) -> None:
    ip("netns", "add", host.namespace)
    ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
    ip("link", "set", host.veth, "master", bridge)
    ip("link", "set", host.veth, "up")
    inside = ("-n", host.namespace)
    ip(*inside, "link", "set", "lo", "up")
    ip(*inside, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
    ip(*inside, "link", "set", "eth0", "up")
    [eth0] = json.loads(ip(*inside, "-j", "link", "show", "eth0"))
    # Static neighbours both ways (the module's docstring says why).
    ip(
        *inside,
        "neigh",
        "replace",
        address,
        "lladdr",
        bridge_mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    )
    ip(
        "neigh",
        "replace",
        host.address,
        "lladdr",
        str(eth0["address"]),
        "dev",
        bridge,
        "nud",
        "permanent",
    )


def _remove_leftovers() -> None:
    """Delete the namespaces and bridges of test processes that are gone (killed before
    their teardown could run); a namespace takes its veth pair with it."""
    for line in ip("netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        found = re.fullmatch(rf"{_NAMESPACE_PREFIX}(\d+)-\w+", name)
        if found and not Path(f"/proc/{found[1]}").exists():
            _try_ip("netns", "del", name)
    for link in json.loads(ip("-j", "link", "show", "type", "bridge") or "[]"):
        found = re.fullmatch(r"tcbr(\d+)", str(link.get("ifname", "")))
        if found and not Path(f"/proc/{found[1]}").exists():
            _try_ip("link", "del", found[0])


def _mac(pid: int, index: int) -> str:
    """A locally administered unicast address of this process's."""
    octets = [0x02, 0x74, (pid >> 16) & 0xFF, (pid >> 8) & 0xFF, pid & 0xFF, index & 0xFF]
    return ":".join(f"{o:02x}" for o in octets)


def _free_subnet(pid: int) -> ipaddress.IPv4Network:
    """A /24 of 10.231.0.0/16 that no interface here has an address in (pid-based first)."""
    used = [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
        for link in json.loads(ip("-j", "-4", "addr", "show"))
        for a in link.get("addr_info", [])
    ]
    candidates: list[ipaddress.IPv4Network] = list(_SUBNETS.subnets(new_prefix=24))
    start = pid % len(candidates)
    for subnet in candidates[start:] + candidates[:start]:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError(f"no free /24 left in {_SUBNETS}")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- processes in a host -----------------------------------------------------------------
def launch_worker(
    host: Host, log_path: Path, env: Mapping[str, str], concurrency: int = 2
) -> tuple[WorkerProcess, Path]:
    """Start ``threadcast worker`` (one process, ``concurrency`` threads) inside ``host`` as
    :func:`producer.processes.start_worker` does on this machine; with the file it writes its
    pid to once it consumes (:func:`wait_ready`). Its pid is the worker's own: ``ip netns
    exec`` and ``threadcast worker`` (one process) each replace themselves."""
    name = f"threadcast-{host.name}-{uuid.uuid4().hex[:8]}@%h"
    argv = host.command(
        sys.executable,
        "-m",
        "producer.cli",
        "worker",
        "-c",
        str(concurrency),
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    ready = log_path.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    child_env = dict(env) | {
        "THREADCAST_WORKER_READY_FILE": str(ready),
        "THREADCAST_WORKER_PROCESSES": "1",
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env
    )
    return WorkerProcess(name, log_path, process, log), ready


def wait_ready(worker: WorkerProcess, ready: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            tail = worker.log_text()[-3000:]
            raise RuntimeError(f"the worker in its host did not start; its output:\n{tail}")
        time.sleep(0.1)


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class BoundRedis:
    """A private ``redis-server`` listening on ``address`` (the hosts reach it there)."""

    def __init__(self, address: str, directory: Path) -> None:
        self.port = free_port(address)
        self.url = f"redis://{address}:{self.port}/0"
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            # Protected mode refuses every client not on the loopback; the hosts are not.
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                address,
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not _answers(address, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on {address}:{self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class TcpRelay:
    """Forwards each TCP connection made to ``address``:``port`` to ``target``, on an asyncio
    loop in a thread of its own: PostgreSQL listens on the loopback only, the hosts cannot
    reach that, so they reach it through this."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.address = address
        self.target = target
        self.port = 0
        # The local port of each connection made to the target, by the address of the peer it
        # relays for: how PostgreSQL (pg_stat_activity.client_port) tells a host's sessions.
        self.upstream_ports: dict[str, set[int]] = {}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="tcp-relay"
        )

    def start(self) -> TcpRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, self.address, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            peer = str(writer.get_extra_info("peername")[0])
            local = int(up_writer.get_extra_info("sockname")[1])
            self.upstream_ports.setdefault(peer, set()).add(local)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._tasks.discard(task)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()
