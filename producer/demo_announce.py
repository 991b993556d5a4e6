"""``threadcast demo --scenario announce``: a rich announcement to an audience, edited, recalled.

Against the simulator answering as live Graph does today (the beta segment gone, every
documented limit enforced, posts, edits and audience reads alike): one tenant whose signed-in
user is in 300 teams; the audience "the General channel of every team I am in" resolves
through Graph to 300 channels; a card with an inline image, a subject and ``urgent``
importance goes to each; then the announcement is edited (a PATCH of each message) and
recalled (a softDelete of each).

Exit status 0 only if the simulator holds 300 messages, each created once, edited once and
soft-deleted once and nothing else (no duplicate, no repeated delete), and the ledger agrees.
The 429s Graph answered (if any: each is retried after its Retry-After) are shown.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

import simulator
from producer import status
from producer.client import Producer
from producer.demo import DEMO_CLIENT_ID, forget, private_redis, say
from producer.processes import start_worker
from producer.signin import sign_in
from threadcast.endpoints import AUTO
from threadcast.ledger.changes import ChangeState, ItemState
from threadcast.settings import Settings, load_settings

TEAMS = 300
AUDIENCE = "tenant={tenant};channel=General"
SIM_FLAGS = (
    "--chatthreads-removed",
    "--throttle-defaults",
    "--teams-per-tenant",
    str(TEAMS),
    "--channels-per-team",
    "2",
)
# A 1x1 PNG: the inline image of the card.
LOGO = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CARD = {
    "type": "AdaptiveCard",
    "version": "1.4",
    "body": [
        {"type": "Image", "url": "image:logo", "altText": "threadcast"},
        {"type": "TextBlock", "text": "The office is closed on Friday", "weight": "Bolder"},
    ],
    "actions": [{"type": "Action.OpenUrl", "title": "Details", "url": "https://example.com"}],
}
FIRST = '<p>Office closed <b>Friday</b>.</p><attachment id="notice"></attachment>'
EDITED = '<p>Correction: office closed <b>Monday</b>.</p><attachment id="notice"></attachment>'


def main(workdir: Path | None = None) -> int:
    workdir = workdir or Path(".demo") / "announce"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    say(
        "scenario announce: a card with an image, a subject and urgent importance to the "
        f"General channel of each of {TEAMS} teams (an audience), then edited, then recalled"
    )
    with contextlib.ExitStack() as stack:
        redis_url = private_redis(stack.callback)
        sim = simulator.start(workdir / "sim", device_approve_delay=1.0, extra_args=SIM_FLAGS)
        stack.callback(sim.stop)
        say(f"simulator at {sim.graph_url}: {' '.join(SIM_FLAGS)}")
        settings = load_settings(
            redis_url=redis_url,
            database_url=f"sqlite:///{workdir.resolve() / 'ledger.db'}",
            graph_url=sim.graph_url,
            authority_host=sim.authority_host,
            ca_bundle=sim.ca_bundle,
            client_id=DEMO_CLIENT_ID,
            token_cache_key=Fernet.generate_key().decode(),
            endpoint=AUTO,
            audiences=True,  # login asks for Team.ReadBasic.All and Channel.ReadBasic.All
            changes=True,  # ... and ChannelMessage.ReadWrite
        )
        tenant = str(uuid.uuid4())
        forget(redis_url, [tenant])
        stack.callback(forget, redis_url, [tenant])
        say(f"signing in tenant {tenant} (device-code flow)")
        user, _ = sign_in(settings, tenant, lambda text: say(f"  {text}"))
        say(f"  signed in as {user}")
        worker = start_worker(
            workdir / "worker.log", env=os.environ | settings.as_env(), concurrency=2
        )
        stack.callback(worker.stop)
        return _judge(_run(settings, tenant), _simulator(sim))


def _run(settings: Settings, tenant: str) -> dict[str, Any]:
    audience = AUDIENCE.format(tenant=tenant)
    with Producer(settings) as producer:
        resolved = producer.resolve([audience])
        say(f"audience {audience!r} resolved through Graph: {len(resolved.targets)} channels")
        sent = producer.send(
            FIRST,
            resolved.targets,
            subject="Office closed",
            importance="urgent",
            cards=[{"id": "notice", "content": CARD}],
            images=[{"name": "logo", "data": LOGO}],
            source="demo",
        )
        say(f"broadcast {sent.broadcast_id}: {sent.deliveries} deliveries queued")
        final = status.watch(producer.ledger, sent.broadcast_id, endpoint=settings.endpoint)
        print(status.render(final))
        edit = producer.edit(
            sent.broadcast_id,
            EDITED,
            subject="Office closed (corrected)",
            importance="urgent",
            cards=[{"id": "notice", "content": CARD}],
            images=[{"name": "logo", "data": LOGO}],
            source="demo",
        ).change
        say(f"edit {edit.id}: {edit.counts[ItemState.PENDING]} messages to PATCH")
        edited = _follow(producer, edit.id)
        recall = producer.recall(sent.broadcast_id, source="demo").change
        say(f"recall {recall.id}: {recall.counts[ItemState.PENDING]} messages to soft-delete")
        recalled = _follow(producer, recall.id)
        return {
            "sent": status.as_json(final)["sent"],
            "edited": edited,
            "recalled": recalled,
            "expected": len(resolved.targets),
        }


def _follow(producer: Producer, change_id: str) -> dict[str, int]:
    """Its counts once done, a line per second meanwhile."""
    started = time.monotonic()
    while True:
        change = producer.ledger.changes.get(change_id)
        done = change.counts[ItemState.DONE]
        if change.state is not ChangeState.RUNNING:
            say(
                f"  {change.kind} {change.state}: {done} done in {time.monotonic() - started:.1f} s"
            )
            return change.counts
        say(f"  {change.kind}: {done} done, {change.counts[ItemState.PENDING]} pending")
        time.sleep(1.0)


def _simulator(sim: simulator.RunningSimulator) -> dict[str, Any]:
    with httpx.Client(base_url=sim.admin_url, verify=sim.ssl_context(), timeout=10) as http:
        messages = http.get("/messages", params={"limit": 1}).raise_for_status().json()
        throttle = http.get("/throttle").raise_for_status().json()
        stats = http.get("/stats").raise_for_status().json()
    throttled = {
        scope: found["throttled"]
        for scope, found in throttle["scopes"].items()
        if found.get("throttled")
    }
    return {
        "messages": messages["summary"],
        "throttle": throttle["totals"],
        "throttled": throttled,
        "stats": stats,
    }


def _judge(ledger: dict[str, Any], sim: dict[str, Any]) -> int:
    n = ledger["expected"]
    summary, totals = sim["messages"], sim["throttle"]
    versions = summary["versions"]
    say(
        f"simulator: {summary['messages']} messages; versions created {versions['created']}, "
        f"edited {versions['edited']}, soft-deleted {versions['soft_deleted']}; repeated "
        f"soft-deletes {summary['soft_delete_repeats']}; histories {summary['histories']}; "
        f"429s {totals['throttled']}"
    )
    if sim["throttled"]:  # retried after their Retry-After: which scopes Graph refused
        say(f"429s by scope: {sim['throttled']}")
    say(
        f"ledger: sent {ledger['sent']}; edit done {ledger['edited'][ItemState.DONE]}; "
        f"recall done {ledger['recalled'][ItemState.DONE]}"
    )
    ok = (
        n == TEAMS
        and ledger["sent"] == n
        and ledger["edited"][ItemState.DONE] == n
        and ledger["recalled"][ItemState.DONE] == n
        and summary["messages"] == n
        and versions == {"created": n, "edited": n, "soft_deleted": n}
        and summary["soft_delete_repeats"] == 0
        and summary["histories"] == {"created>edited>soft_deleted": n}
        and sim["stats"]["duplicates"] == 0
    )
    say(
        f"{'OK' if ok else 'FAILED'}: {n} messages created once, edited once, soft-deleted "
        "once, nothing else"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
