"""How many chatthreads POSTs per second the simulator answers over HTTPS with keep-alive.

Starts the simulator as a subprocess (port 0 + ready file), signs a tenant in with the device
code flow through real MSAL, then drives N POSTs from keep-alive ``httpx.Client``s (a few
processes, a few threads each: one Python process cannot keep the server busy) and prints
``{"requests": N, "seconds": s, "rps": x, "server_cpu_ms_per_request": c}``. The last figure is
the simulator's own CPU time per request: on a machine whose cores the clients share with the
server, it tells what the server could do alone (1000 / c requests per second per core).
Every answer must be 204 and every post recorded, or the run fails.

    .venv/bin/python bench/sim_throughput.py --requests 20000 --processes 3 --threads 2

``--sim-args`` passes flags to the simulator; ``--throttled`` switches every throttle on with
limits too high to bind, to measure what the sliding windows cost (all requests go to one app,
tenant, team and channel, so every window holds about a second of traffic):

    .venv/bin/python bench/sim_throughput.py --requests 20000 --throttled
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import ssl
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.process import RunningSimulator, start

CLIENT_ID = "5c2a4b8e-3a51-4d0c-9f7e-1b2c3d4e5f60"
BODY = b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'
NON_BINDING_LIMITS = [
    "--app-rps",
    "1000000",
    "--tenant-rps",
    "1000000",
    "--team-rps",
    "1000000",
    "--channel-daily",
    "1000000000",
]


def sign_in(sim: RunningSimulator, tenant: str) -> str:
    with httpx.Client(verify=sim.ssl_context()) as http:
        app = msal.PublicClientApplication(
            CLIENT_ID, authority=sim.authority(tenant), instance_discovery=False, http_client=http
        )
        flow = app.initiate_device_flow(scopes=["Group.ReadWrite.All"])
        result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise SystemExit(f"sign-in failed: {result}")
    return str(result["access_token"])


def _post_many(url: str, context: ssl.SSLContext, token: str, requests: int, ok: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(verify=context, headers=headers) as client:  # one keep-alive connection
        ok.append(sum(client.post(url, content=BODY).status_code == 204 for _ in range(requests)))


def client_process(url: str, ca: str, token: str, requests: int, threads: int, go: float) -> int:
    context = ssl.create_default_context(cafile=ca)
    ok: list[int] = []
    shares = _split(requests, threads)
    workers = [
        threading.Thread(target=_post_many, args=(url, context, token, n, ok)) for n in shares
    ]
    time.sleep(max(0.0, go - time.time()))  # all clients start inside the timed window
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(ok)


def _split(total: int, parts: int) -> list[int]:
    shares = [total // parts] * parts
    shares[0] += total - sum(shares)
    return shares


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(sim: RunningSimulator, requests: int, processes: int, threads: int) -> dict[str, float]:
    token = sign_in(sim, str(uuid.uuid4()))
    channel = "19%3Abench%40thread.tacv2"
    url = f"{sim.graph_url}/beta/groups/{uuid.uuid4()}/channels/{channel}/chatthreads"
    go = time.time() + 1.0
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        cpu_before = _cpu_seconds(sim.pid)
        jobs = [
            pool.apply_async(client_process, (url, str(sim.ca_bundle), token, n, threads, go))
            for n in _split(requests, processes)
        ]
        ok = sum(job.get() for job in jobs)
        seconds = time.time() - go
        cpu = _cpu_seconds(sim.pid) - cpu_before
    with httpx.Client(verify=sim.ssl_context()) as admin:
        accepted = admin.get(f"{sim.admin_url}/stats").json()["accepted"]
    if ok != requests or accepted != requests:
        raise SystemExit(f"FAILED: {ok} answered 204 and {accepted} recorded, of {requests}")
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1),
        "server_cpu_ms_per_request": round(cpu * 1000 / requests, 3),
    }


def _max_window(sim: RunningSimulator) -> int:
    """The fullest one-second window the simulator saw: the rate it really served."""
    with httpx.Client(verify=sim.ssl_context()) as admin:
        report = admin.get(f"{sim.admin_url}/throttle").json()
    if report["totals"]["throttled"]:
        raise SystemExit(f"FAILED: the non-binding limits throttled: {report['totals']}")
    return max(scope["max_window"] for scope in report["scopes"].values() if "max_window" in scope)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=3, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="connections per client process")
    parser.add_argument("--sim-args", default="", help="extra simulator flags, one string")
    parser.add_argument(
        "--throttled", action="store_true", help="enforce all four limits, set too high to bind"
    )
    args = parser.parse_args()
    sim_args = [*shlex.split(args.sim_args), *(NON_BINDING_LIMITS if args.throttled else [])]
    with (
        tempfile.TemporaryDirectory() as state_dir,
        start(state_dir, device_approve_delay=0, log_level="warning", extra_args=sim_args) as sim,
    ):
        result = run(sim, args.requests, args.processes, args.threads)
        if args.throttled:
            result["throttle_max_window"] = _max_window(sim)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
