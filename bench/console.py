"""The console's check (issue 16): a broadcast of 2,000 deliveries with 5% failures shows the
right counts in the console within 2 s of the ledger.

A private rig (Redis, the simulator, two signed-in tenants, a worker), the API in this
process, Chromium (Debian's, /usr/bin/chromium) on the broadcast's page. The ledger is read
every 20 ms until every delivery is settled; the figure is the time from then until the
page shows the same sent and failed counts (it polls every second). Prints JSON and a line.

    .venv/bin/python bench/console.py [--runs 3] [--deliveries 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rig import rig, summary, wait_until
from tests.integration.apiserver import start_api

KEY = "bench-operator-" + "b" * 20
TEAMS = 20  # one of them (5%) refuses the app: its deliveries fail for good
BOUND = 2.0


def run(deliveries: int, runs: int, chromium: str) -> dict[str, object]:
    per_team = deliveries // TEAMS
    lags: list[float] = []
    with rig(tenant_rps=400, team_rps=100, app_rps=1000) as bench:
        tenants = bench.sign_in(2)
        bench.start_workers(4)
        settings = bench.settings.model_copy(
            update={"api_keys": SecretStr(f"operator@bench:{KEY}")}
        )
        api = start_api(settings)
        ledger = bench.ledger()
        http = httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {KEY}"})
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True)
                page = browser.new_page()
                page.goto(api.base_url + "/")
                page.get_by_label("API key").fill(KEY)
                page.get_by_role("button", name="Use this key").click()
                page.get_by_role("heading", name="Broadcasts", exact=True).wait_for()
                for _ in range(runs):
                    teams = [str(uuid.uuid4()) for _ in range(TEAMS)]
                    bench.http.post(
                        f"{bench.sim.admin_url}/tenants/{tenants[0]}/teams/{teams[0]}/membership",
                        json={"member": False},
                    ).raise_for_status()
                    targets = [
                        {
                            "tenant": tenants[t % 2],
                            "group": team,
                            "channel": f"19:b{t}x{c}@thread.tacv2",
                        }
                        for t, team in enumerate(teams)
                        for c in range(per_team)
                    ]
                    answer = http.post(
                        "/v1/broadcasts", json={"content": "bench", "targets": targets}
                    )
                    broadcast_id = answer.raise_for_status().json()["broadcast_id"]
                    page.goto(f"{api.base_url}/#/broadcasts/{broadcast_id}")
                    total = len(targets)

                    def settled(bid: str = broadcast_id, n: int = total) -> bool:
                        counts = ledger.broadcasts.counts(bid)
                        return counts["sent"] + counts["failed"] == n

                    assert wait_until(settled, 600, every=0.02), "the broadcast did not settle"
                    at = time.monotonic()
                    counts = ledger.broadcasts.counts(broadcast_id)
                    page.wait_for_function(
                        "([s, f]) => document.getElementById('count-sent')?.textContent === s"
                        " && document.getElementById('count-failed')?.textContent === f",
                        arg=[str(counts["sent"]), str(counts["failed"])],
                        timeout=30_000,
                        polling=20,
                    )
                    lags.append(time.monotonic() - at)
                browser.close()
        finally:
            http.close()
            ledger.close()
            api.stop()
    return {"deliveries": per_team * TEAMS, "failures": per_team, "shown_after_s": summary(lags)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    figures = run(args.deliveries, args.runs, args.chromium)
    print(json.dumps(figures, indent=2))
    worst = figures["shown_after_s"]["max"]  # type: ignore[index]
    verdict = "within" if worst <= BOUND else "OVER"
    print(f"console showed the ledger's counts after at most {worst:.2f} s: {verdict} {BOUND:g} s")


if __name__ == "__main__":
    main()
