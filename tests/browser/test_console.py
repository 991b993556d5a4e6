"""The operator's console (issue 16, items 1 and 4) in Chromium against the real stack: sign
in (a wrong key first), follow a broadcast sent through the API to "done" with its failures
counted without a reload, open a failed delivery's attempt log, retry the failures
after a confirmation that counts them, download the export, cancel a scheduled broadcast;
the schedules, tenants and health pages; an unknown id; a key that may not. Each page is
saved to docs/console/ for the README.
"""

from __future__ import annotations

import csv
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from producer.scheduler import Schedules
from tests.browser.conftest import OPERATOR_KEY, SERVICE_KEY, Console, shoot
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for

pytestmark = pytest.mark.backends("sqlite")  # the console reads the API: one backend is enough

# Rates well above the suite's sends: the test watches the console, not the limits.
STACK_ENV = {
    "THREADCAST_TENANT_RPS": "400",
    "THREADCAST_TEAM_RPS": "100",
    "THREADCAST_APP_RPS": "1000",
}
TEAMS = 20
PER_TEAM = 20  # 400 deliveries; one team's 20 (5%) fail: the app is not a member of it


def targets(stack: Stack, teams: list[str], per_team: int) -> list[dict[str, str]]:
    return [
        {
            "tenant": stack.tenants[t % 2],
            "group": team,
            "channel": f"19:console{t}x{c}{uuid.uuid4().hex[:6]}@thread.tacv2",
        }
        for t, team in enumerate(teams)
        for c in range(per_team)
    ]


def send(console: Console, body: dict[str, Any], client: httpx.Client | None = None) -> str:
    answer = (client or console.operator).post("/v1/broadcasts", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["broadcast_id"])


def settled(stack: Stack, broadcast_id: str, total: int) -> dict[str, int] | None:
    counts = stack.ledger.broadcasts.counts(broadcast_id)
    return counts if counts["sent"] + counts["failed"] == total else None


def count(page: Page, state: str) -> int:
    return int(page.locator(f"#count-{state}").inner_text())


def test_docs_and_the_console_load_nothing_from_elsewhere(console: Console) -> None:
    for path in ("/docs", "/"):
        html = httpx.get(console.url + path).text
        assert "cdn." not in html
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert urls and all(u.startswith(("/", "#")) for u in urls), urls
        assert not re.search(r"https?://", html.replace(console.url, ""))
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert httpx.get(console.url + asset).status_code == 200
    for asset in ("/console/console.js", "/console/console.css"):
        answer = httpx.get(console.url + asset)
        assert answer.status_code == 200 and "http://" not in answer.text.replace("https://", "")
    assert httpx.get(console.url + "/console/../app.py").status_code == 404
    # Swagger UI renders from the local files (no network beyond this server).
    page = console.page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(console.url) else None,
    )
    page.goto(console.url + "/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.locator(".swagger-ui .opblock").count() > 20  # every route, rendered
    assert outside == []
    page.context.close()


def test_a_wrong_key_is_refused_and_forgotten(console: Console) -> None:
    page = console.page()
    page.goto(console.url + "/")
    page.get_by_label("API key").fill("not-a-key-" + "x" * 20)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_contain_text("That key is not valid")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0
    shoot(page, "sign-in")
    page.get_by_label("API key").fill(OPERATOR_KEY)
    page.keyboard.press("Enter")  # the form works from the keyboard
    page.get_by_role("heading", name="Broadcasts", exact=True).wait_for()
    assert OPERATOR_KEY not in page.url
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('threadcast.key')") == OPERATOR_KEY
    page.context.close()


def test_a_broadcast_followed_to_done_then_its_failures_retried(
    console: Console, stack: Stack
) -> None:
    teams = [str(uuid.uuid4()) for _ in range(TEAMS)]
    stack.sim.membership(stack.tenants[0], teams[0], member=False)  # 20 permanent 403s
    many = targets(stack, teams, PER_TEAM)
    page = console.signed_in()
    broadcast_id = send(console, {"content": "<p>console</p>", "targets": many})

    # The list shows it, newest first, with live progress.
    row = page.locator("#broadcasts tbody tr").first
    expect(row).to_contain_text(broadcast_id)
    total = len(many)
    deadline = time.monotonic() + 90
    while (counts := settled(stack, broadcast_id, total)) is None:
        assert time.monotonic() < deadline, "the broadcast did not settle"
        time.sleep(0.02)
    # Shown without a reload (how soon is bench/console.py's figure, not a test's).
    expect(row).to_contain_text(f"{total} of {total}", timeout=5000)
    assert counts["failed"] == PER_TEAM and counts["sent"] == total - PER_TEAM
    expect(row.locator("td").nth(4)).to_have_text(str(PER_TEAM))  # Failed
    shoot(page, "broadcasts")

    # One broadcast: counts per state and tenant, failures by error code.
    page.get_by_role("link", name=broadcast_id).click()
    page.get_by_role("heading", name=f"Broadcast {broadcast_id}").wait_for()
    expect(page.locator("#count-failed")).to_have_text(str(PER_TEAM))
    expect(page.locator("#count-sent")).to_have_text(str(total - PER_TEAM))
    expect(page.locator("#progress-text")).to_contain_text("done")
    tenants = page.locator("#tenants tbody tr")
    expect(tenants).to_have_count(2)
    errors = page.locator("#errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("Forbidden")
    expect(errors.first).to_contain_text(str(PER_TEAM))
    shoot(page, "broadcast")

    # A failed delivery's attempt log, reached from the keyboard.
    log_link = errors.first.get_by_role("link").first
    log_link.focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=re.compile("Attempt log of delivery")).wait_for()
    attempts = page.locator("#attempts tbody tr")
    expect(attempts.first).to_contain_text("403")
    expect(attempts.first).to_contain_text("Forbidden")
    shoot(page, "attempts")
    page.go_back()
    page.get_by_role("heading", name=f"Broadcast {broadcast_id}").wait_for()

    # Retry the failures: the confirmation counts them; Escape first changes nothing.
    stack.sim.membership(stack.tenants[0], teams[0], member=True)
    page.get_by_role("button", name=f"Retry these {PER_TEAM}…").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{PER_TEAM} deliveries")
    assert page.evaluate("document.activeElement.id") == "confirm-no"  # focus in the dialog
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert stack.ledger.broadcasts.counts(broadcast_id)["failed"] == PER_TEAM
    page.get_by_role("button", name=f"Retry these {PER_TEAM}…").click()
    dialog.get_by_role("button", name=f"Retry {PER_TEAM} deliveries").click()
    expect(page.get_by_text(f"Re-queued {PER_TEAM} deliveries.")).to_be_visible()
    wait_for(lambda: settled(stack, broadcast_id, total) is not None, 60, "the retry")
    expect(page.locator("#count-sent")).to_have_text(str(total), timeout=5000)
    expect(page.locator("#count-failed")).to_have_text("0")

    # The export, downloaded as a file.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV export").click()
    saved = Path(download.value.path())
    rows = list(csv.DictReader(saved.open(encoding="utf-8")))
    assert download.value.suggested_filename == f"{broadcast_id}.csv"
    assert len(rows) == total and {r["state"] for r in rows} == {"sent"}
    page.context.close()


def test_a_scheduled_broadcast_is_cancelled_after_a_confirmation(
    console: Console, stack: Stack
) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    few = targets(stack, [str(uuid.uuid4())], 5)
    broadcast_id = send(console, {"content": "later", "targets": few, "send_at": later})
    page = console.signed_in()
    page.goto(f"{console.url}/#/broadcasts/{broadcast_id}")
    expect(page.locator("#count-scheduled")).to_have_text("5")
    page.get_by_role("button", name="Cancel the broadcast…").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text("5 deliveries")
    dialog.get_by_role("button", name="Cancel 5 deliveries").click()
    expect(page.get_by_text("Cancelled 5 deliveries.")).to_be_visible()
    expect(page.locator("#count-cancelled")).to_have_text("5")
    assert stack.ledger.broadcasts.counts(broadcast_id)["cancelled"] == 5
    page.context.close()


def test_an_unknown_id_in_the_url_says_so(console: Console) -> None:
    page = console.signed_in()
    page.goto(f"{console.url}/#/broadcasts/no-such-broadcast")
    expect(page.get_by_role("alert")).to_contain_text("no broadcast with id 'no-such-broadcast'")
    page.goto(f"{console.url}/#/broadcasts/bad%20id%21")
    expect(page.get_by_role("alert")).to_contain_text("must be 1-128 characters")
    page.goto(f"{console.url}/#/nowhere")
    expect(page.get_by_role("alert")).to_contain_text("no page")
    page.context.close()


def test_schedules_with_their_next_occurrences(console: Console, stack: Stack) -> None:
    sid = f"weekly-{uuid.uuid4().hex[:6]}"
    with Schedules(stack.settings) as schedules:
        schedules.add(
            "0 9 * * MON",
            "Europe/Berlin",
            "<p>weekly notes</p>",
            targets(stack, [str(uuid.uuid4())], 3),
            schedule_id=sid,
        )
        first = schedules.next(sid, 1)[0].at
    page = console.signed_in()
    page.get_by_role("link", name="Schedules").click()
    row = page.locator("#schedules tbody tr", has_text=sid)
    expect(row).to_contain_text("0 9 * * MON")
    expect(row.get_by_role("listitem")).to_have_count(3)
    row.get_by_role("button", name="Skip…").first.click()
    page.locator("dialog#confirm").get_by_role("button", name="Skip it").click()
    expect(row.get_by_role("listitem").first).to_contain_text("skipped")
    with Schedules(stack.settings) as schedules:
        assert schedules.next(sid, 1)[0].at == first and schedules.next(sid, 1)[0].skipped
    shoot(page, "schedules")
    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("paused")
    assert stack.ledger.schedules.get(sid).state.value == "paused"
    row.get_by_role("button", name="Resume").click()
    expect(row.get_by_role("button", name="Pause")).to_be_visible()
    page.context.close()


def test_tenants_and_health(console: Console, stack: Stack) -> None:
    page = console.signed_in()
    page.get_by_role("link", name="Tenants").click()
    rows = page.locator("#tenant-list tbody tr")
    expect(rows).to_have_count(2)
    for tenant in stack.tenants:
        expect(page.locator("#tenant-list")).to_contain_text(tenant)
    expect(rows.first).to_contain_text("ok")
    shoot(page, "tenants")
    page.get_by_role("link", name="Health").click()
    checks = page.locator("#checks")
    expect(checks).to_contain_text("redis", timeout=30_000)
    expect(checks).to_contain_text("ledger")
    shoot(page, "health")
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("heading", name="Endpoints").wait_for()
    shoot(page, "webhooks")
    page.context.close()


def test_a_key_may_do_in_the_console_what_it_may_do_in_the_api(
    console: Console, stack: Stack
) -> None:
    others = send(console, {"content": "ops", "targets": targets(stack, [str(uuid.uuid4())], 2)})
    mine = send(
        console,
        {"content": "mine", "targets": targets(stack, [str(uuid.uuid4())], 2)},
        console.service,
    )
    page = console.signed_in(SERVICE_KEY)
    listing = page.locator("#broadcasts")
    expect(listing).to_contain_text(mine)
    expect(listing).not_to_contain_text(others)
    page.goto(f"{console.url}/#/broadcasts/{others}")
    expect(page.get_by_role("alert")).to_contain_text(f"no broadcast with id '{others}'")
    page.get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("alert")).to_contain_text("This key may not read the tenants")
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_role("alert")).to_contain_text("may not read the deployment's health")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("alert")).to_contain_text("This key may not read the webhooks")
    page.context.close()
