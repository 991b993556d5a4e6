"""The console in a real browser: Debian's Chromium driven by Playwright, against the API
served by uvicorn and the real stack (a Celery worker, the simulator over HTTPS, Redis, the
ledger) from tests/integration/conftest.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import (  # noqa: F401 (fixtures used by the tests here)
    Stack,
    cache_key,
    settings_from,
    sim,
    sim_admin,
    stack,
)

OPERATOR_KEY = "console-operator-" + "o" * 20
SERVICE_KEY = "console-service-" + "s" * 20
KEYS = f"operator@oncall:{OPERATOR_KEY},billing:{SERVICE_KEY}"
#: Debian's package (.ci/run installs it when missing); Playwright's own browsers are never
#: downloaded. THREADCAST_TEST_CHROMIUM names another build.
CHROMIUM = (
    os.environ.get("THREADCAST_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@dataclass
class Console:
    server: RunningApi
    operator: httpx.Client  # the API with the operator key
    service: httpx.Client  # the API with the non-operator key "billing"
    browser: Browser

    @property
    def url(self) -> str:
        return self.server.base_url

    def page(self) -> Page:
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 860}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    def signed_in(self, key: str = OPERATOR_KEY) -> Page:
        page = self.page()
        page.goto(self.url + "/")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Use this key").click()
        page.get_by_role("heading", name="Broadcasts", exact=True).wait_for()
        return page


def shoot(page: Page, name: str) -> None:
    """docs/console/<name>.png, overwritten each run (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def console(stack: Stack) -> Iterator[Console]:  # noqa: F811 (the fixture imported above)
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    server = start_api(settings_from(stack.env | {"THREADCAST_API_KEYS": KEYS}))
    operator = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=30
    )
    service = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {SERVICE_KEY}"}, timeout=30
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield Console(server, operator, service, browser)
        finally:
            browser.close()
            operator.close()
            service.close()
            server.stop()
