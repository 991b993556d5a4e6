"""The scheduler's job that posts webhook events to their endpoints (docs/WEBHOOKS.md).

Each due delivery is POSTed as the Standard Webhooks specification says: a JSON body
``{"type", "timestamp", "data"}`` (the same bytes on every attempt) with the headers
``webhook-id`` (the event's id: the same on every attempt, for the receiver to deduplicate),
``webhook-timestamp`` and ``webhook-signature``, signed by the ``standardwebhooks`` library.
A 2xx answer delivers it; anything else (another status, a timeout, a refused connection) is
retried with exponential backoff and jitter (5 s doubling to an hour, for about a day), then
given up (``failed``). Every attempt is recorded in the ledger before the next is made, so a
restarted sender goes on where the last one stopped: at least once, never lost.

An endpoint failing every attempt for long enough (``PAUSE_FAILURES`` in a row over
``PAUSE_AFTER``) is paused: its deliveries wait, untried, until an operator resumes it
(``threadcast webhooks resume NAME``). Within one run an endpoint that fails is not tried
again: one dead endpoint costs one request per run, not one per pending event.

``run(now)`` never waits for an endpoint: each endpoint's due deliveries are posted by a thread
of its own (one at a time per endpoint), so a slow or dead endpoint delays neither the others
nor the scheduler's other jobs (launching broadcasts); workers and Graph never see webhooks.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from standardwebhooks import Webhook

from threadcast.ledger import Ledger
from threadcast.ledger.webhooks import AttemptResult, DueDelivery, PauseRule
from threadcast.webhooks import WebhookEndpoint

log = logging.getLogger("threadcast.webhooks")

#: How often the job looks for due deliveries (seconds).
SEND_INTERVAL_SECONDS = 1.0
USER_AGENT = "threadcast-webhooks/1"
#: Attempts per delivery at most, whatever the policy's numbers.
MOST_ATTEMPTS = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff, giving up, pausing and the bounds of one endpoint's run."""

    first: float = 5.0  # seconds before the second attempt
    cap: float = 3600.0  # the longest wait between two attempts
    retry_for: float = 86_400.0  # nominal span of all attempts: then the delivery is given up
    jitter: float = 0.2  # each wait is drawn from ±20% around its nominal value
    timeout: float = 5.0  # a whole attempt, connect to answer
    pause: PauseRule = field(
        default_factory=lambda: PauseRule(failures=10, after=timedelta(minutes=10))
    )
    batch: int = 100  # deliveries one run of an endpoint posts at most
    budget: float = 10.0  # seconds one run of an endpoint goes on starting attempts

    def delay(self, attempts: int) -> float:
        """Nominal seconds after the ``attempts``-th failed attempt (1, 2, …)."""
        return min(self.cap, self.first * 2.0 ** min(60, max(0, attempts - 1)))

    @functools.cached_property
    def max_attempts(self) -> int:
        """Attempts made before giving up: as many as fit in ``retry_for`` by the schedule."""
        waited, attempts = 0.0, 1
        while waited + self.delay(attempts) <= self.retry_for and attempts < MOST_ATTEMPTS:
            waited += self.delay(attempts)
            attempts += 1
        return attempts

    def next_attempt(self, attempts: int, at: datetime, rng: random.Random) -> datetime | None:
        """When to try again after the ``attempts``-th failure, or None: give up."""
        if attempts >= self.max_attempts:
            return None
        nominal = self.delay(attempts)
        spread = nominal * self.jitter
        return at + timedelta(seconds=nominal + rng.uniform(-spread, spread))


def body_of(item: DueDelivery) -> bytes:
    """The request body: the same bytes on every attempt (the stored payload is fixed)."""
    stamp = item.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = f'{{"type":"{item.type}","timestamp":"{stamp}","data":'
    return (head + item.payload + "}").encode("utf-8")


def signed_headers(webhook: Webhook, event_id: str, body: bytes, at: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": webhook.sign(event_id, at, body),
    }


class SendWebhooks:
    """``run(now)``: post every endpoint's due deliveries, each endpoint in its own thread
    (``background=False``: in the caller's thread, one endpoint after the other)."""

    def __init__(
        self,
        ledger: Ledger,
        endpoints: Sequence[WebhookEndpoint],
        policy: RetryPolicy | None = None,
        *,
        background: bool = True,
        transport: httpx.BaseTransport | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._endpoints = tuple(endpoints)
        self._policy = policy or RetryPolicy()
        self._background = background
        self._transport = transport
        self._wall_clock = wall_clock
        self._signers = {e.name: Webhook(e.secret.get_secret_value()) for e in self._endpoints}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()  # noqa: S311 -- jitter, not a secret

    def run(self, now: datetime) -> None:
        for endpoint in self._endpoints:
            if not self._background:
                self.send(endpoint, now)
                continue
            with self._lock:
                running = self._threads.get(endpoint.name)
                if running is not None and running.is_alive():
                    continue  # its last run is still posting: never two at once
                thread = threading.Thread(
                    target=self._send_logged,
                    args=(endpoint, now),
                    name=f"webhooks-{endpoint.name}",
                    daemon=True,
                )
                self._threads[endpoint.name] = thread
                thread.start()

    def busy(self) -> bool:
        """Whether an endpoint's thread is still posting."""
        with self._lock:
            return any(t.is_alive() for t in self._threads.values())

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _send_logged(self, endpoint: WebhookEndpoint, now: datetime) -> None:
        try:
            self.send(endpoint, now)
        except Exception:
            log.exception("webhooks: sending to %s failed; it is tried again", endpoint.name)

    def send(self, endpoint: WebhookEndpoint, now: datetime) -> int:
        """Post the endpoint's due deliveries (bounded); how many were delivered."""
        book = self._ledger.webhooks
        state = book.endpoint(endpoint.name)
        if state is not None and state.paused_at is not None:
            return 0
        due = book.due(endpoint.name, now, self._policy.batch)
        if not due:
            return 0
        started = time.monotonic()
        delivered = 0
        with httpx.Client(
            timeout=self._policy.timeout, follow_redirects=False, transport=self._transport
        ) as http:
            for item in due:
                if time.monotonic() - started > self._policy.budget:
                    break
                at = now + timedelta(seconds=time.monotonic() - started)
                result = self._post(http, endpoint, item, at)
                retry_at = None
                if not result.delivered:
                    retry_at = self._policy.next_attempt(item.attempts + 1, at, self._rng)
                paused = book.finish(item, result, retry_at, self._policy.pause)
                if paused:
                    log.warning("webhooks: endpoint %s paused after failing", endpoint.name)
                if not result.delivered:
                    break  # a failing endpoint is tried again next run, not once per event
                delivered += 1
        return delivered

    def _post(
        self, http: httpx.Client, endpoint: WebhookEndpoint, item: DueDelivery, at: datetime
    ) -> AttemptResult:
        body = body_of(item)
        headers = signed_headers(
            self._signers[endpoint.name], item.event_id, body, self._wall_clock()
        )
        began = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            answer = http.post(endpoint.url, content=body, headers=headers)
            status = answer.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {answer.text[:200]}".rstrip(": ")
        except httpx.TimeoutException:
            error = f"no answer within {self._policy.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = (time.monotonic() - began) * 1000.0
        if error is not None:
            log.info("webhooks: %s to %s: %s", item.event_id, endpoint.name, error)
        return AttemptResult(at, error is None, status, error, latency)
