"""What the rest of threadcast calls to record an event; each is cheap and never raises.

Where each is meant to be called (docs/OPERATIONS.md has the same list):

- :func:`record_attempt` — worker, once per HTTP attempt, after the outcome is known.
- :func:`record_throttled` — worker, on every 429, with the limiter scope it is charged to.
- :func:`observe_limiter_wait` — worker/dispatcher, when a delivery gets its permit.
- :func:`set_parked` — scheduler or dispatcher, after each sweep of parked deliveries.
- :func:`record_token_refresh` — worker token provider, after each refresh (ok or failed).
- :func:`observe_enqueue_to_sent` — worker, when a delivery is recorded ``sent``.
- :func:`record_api_request`, :func:`record_api_broadcast`, :func:`record_auth_failure` —
  the HTTP API (producer.api), already wired.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

from threadcast.metrics.definitions import metrics

NO_STATUS = "none"  # label value when no HTTP answer came back (timeout, connection lost)

log = logging.getLogger("threadcast.metrics")
_P = ParamSpec("_P")
_warned: set[str] = set()


def _never_raises(record: Callable[_P, None]) -> Callable[_P, None]:
    """A metric that cannot be written (its multiprocess directory gone, a full disk) must
    not fail the delivery or request it describes: say so once, then go on."""

    @functools.wraps(record)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:  # any failure: see the docstring
            if record.__name__ not in _warned:
                _warned.add(record.__name__)
                log.warning("metric %s not recorded: %s", record.__name__, exc)

    return guarded


@_never_raises
def record_attempt(status: int | None, tenant: str, outcome: str) -> None:
    """One Graph attempt: its HTTP status (None: no answer) and the state it led to."""
    label = NO_STATUS if status is None else str(status)
    metrics().attempts.labels(tenant=tenant, status=label, outcome=outcome).inc()


@_never_raises
def record_throttled(scope: str) -> None:
    """A 429 charged to ``scope``: ``app``, ``tenant``, ``team`` or ``channel``."""
    metrics().throttled.labels(scope=scope).inc()


@_never_raises
def observe_limiter_wait(seconds: float) -> None:
    metrics().limiter_wait.observe(max(0.0, seconds))


@_never_raises
def set_parked(count: int) -> None:
    metrics().parked.set(count)


@_never_raises
def record_token_refresh(tenant: str, ok: bool) -> None:
    metrics().token_refreshes.labels(tenant=tenant, result="ok" if ok else "failed").inc()


@_never_raises
def record_endpoint_switch(to: str) -> None:
    """This process recorded the deployment's switch to the endpoint ``to``."""
    metrics().endpoint_switches.labels(to=to).inc()


@_never_raises
def observe_enqueue_to_sent(seconds: float) -> None:
    metrics().enqueue_to_sent.observe(max(0.0, seconds))


@_never_raises
def record_api_request(method: str, route: str, status: int) -> None:
    metrics().api_requests.labels(method=method, route=route, status=str(status)).inc()


@_never_raises
def record_api_broadcast(source: str, created: bool) -> None:
    result = "created" if created else "existing"
    metrics().api_broadcasts.labels(source=source, result=result).inc()


@_never_raises
def record_auth_failure() -> None:
    metrics().api_auth_failures.inc()
