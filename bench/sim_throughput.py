"""How many chatthreads POSTs per second the simulator answers over HTTPS with keep-alive.

Starts the simulator as a subprocess (port 0 + ready file), signs a tenant in with the device
code flow through real MSAL, then drives N POSTs from a few keep-alive httpx clients, each in
its own process (one Python client process cannot saturate the server), and prints
``{"requests": N, "seconds": s, "rps": x}``. Every answer must be 204 and the simulator must
have recorded every post, or the run fails.

    .venv/bin/python bench/sim_throughput.py --requests 20000 --clients 2 --connections 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import msal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.process import RunningSimulator, start  # noqa: E402

CLIENT_ID = "5c2a4b8e-3a51-4d0c-9f7e-1b2c3d4e5f60"
BODY = b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'


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


async def _drive(url: str, ca: str, token: str, requests: int, connections: int) -> int:
    """Send ``requests`` POSTs over ``connections`` keep-alive connections; return 204s."""
    context = ssl.create_default_context(cafile=ca)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    remaining = requests
    ok = 0
    async with httpx.AsyncClient(verify=context, limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                response = await client.post(url, content=BODY)
                ok += response.status_code == 204

        await asyncio.gather(*(worker() for _ in range(connections)))
    return ok


def client_process(
    url: str, ca: str, token: str, requests: int, connections: int, start_at: float
) -> int:
    # Line the clients up so that all of them run during the timed window.
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_drive(url, ca, token, requests, connections))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=8, help="per client process")
    args = parser.parse_args()
    tenant, group = str(uuid.uuid4()), str(uuid.uuid4())
    with tempfile.TemporaryDirectory() as state_dir:
        with start(state_dir, device_approve_delay=0, log_level="warning") as sim:
            token = sign_in(sim, tenant)
            url = f"{sim.graph_url}/beta/groups/{group}/channels/19%3Abench%40thread.tacv2/chatthreads"
            ca = str(sim.ca_bundle)
            share = [args.requests // args.clients] * args.clients
            share[0] += args.requests - sum(share)
            start_at = time.time() + 1.0
            with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
                jobs = [
                    pool.apply_async(client_process, (url, ca, token, n, args.connections, start_at))
                    for n in share
                ]
                ok = sum(job.get() for job in jobs)
            seconds = time.time() - start_at
            with httpx.Client(verify=sim.ssl_context()) as admin:
                accepted = admin.get(f"{sim.admin_url}/stats").json()["accepted"]
    if ok != args.requests or accepted != args.requests:
        print(f"FAILED: {ok} answered 204, {accepted} recorded, of {args.requests}", file=sys.stderr)
        return 1
    print(json.dumps({"requests": args.requests, "seconds": round(seconds, 3),
                      "rps": round(args.requests / seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
