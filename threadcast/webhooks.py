"""Webhook endpoints: ``THREADCAST_WEBHOOKS`` parsed and checked (docs/WEBHOOKS.md).

The setting is a JSON list, one object per endpoint::

    [{"url": "https://hooks.example.com/threadcast", "secret": "whsec_<base64>",
      "events": ["broadcast.completed", "broadcast.needs_attention"], "name": "ops"}]

``secret`` is a Standard Webhooks secret (``whsec_`` and 24 to 64 random bytes in base64);
``events`` lists the event types the endpoint wants, or ``"*"`` for all of them; ``name``
(optional, default: the URL's host) names it in the ledger, the CLI and the API. A URL must
be https, or http to a loopback address only (127.0.0.0/8, ::1, localhost). Every error names
the entry and field (``[1].url: …``) and never shows a secret.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
ALL_EVENTS = "*"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FIELDS = frozenset({"url", "secret", "events", "name"})


class EventType(enum.StrEnum):
    BROADCAST_COMPLETED = "broadcast.completed"  # every delivery settled: counts per state
    BROADCAST_NEEDS_ATTENTION = "broadcast.needs_attention"  # settled with failed/unknown ones
    TENANT_WAITING_AUTH = "tenant.waiting_auth"  # a tenant's deliveries wait for a sign-in
    SCHEDULE_MISSED = "schedule.missed"  # a schedule's occurrence was not sent (missed)


@dataclass(frozen=True)
class WebhookEndpoint:
    """One receiver of signed events. ``secret`` stays a SecretStr: never printed."""

    name: str
    url: str
    secret: SecretStr
    events: frozenset[EventType]

    def wants(self, event: EventType) -> bool:
        return event in self.events

    def describe_events(self) -> list[str]:
        return sorted(e.value for e in self.events)


def parse_webhooks(raw: str) -> tuple[WebhookEndpoint, ...]:
    """The setting's JSON as endpoints; a ValueError naming ``[i].field`` says what is wrong."""
    try:
        items = json.loads(raw) if raw.strip() else []
    except ValueError:
        raise ValueError(": must be a JSON list of {url, secret, events, name?} objects") from None
    if not isinstance(items, list):
        raise ValueError(": must be a JSON list of {url, secret, events, name?} objects")
    endpoints = tuple(_endpoint(i, item) for i, item in enumerate(items))
    seen: dict[str, int] = {}
    for i, endpoint in enumerate(endpoints):
        if endpoint.name in seen:
            raise ValueError(
                f"[{i}].name: {endpoint.name!r} is also entry [{seen[endpoint.name]}]'s name; "
                "give each endpoint its own name"
            )
        seen[endpoint.name] = i
    return endpoints


def _endpoint(i: int, item: Any) -> WebhookEndpoint:
    where = f"[{i}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be an object with url, secret and events")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown field; use url, secret, events, name")
    url = check_url(f"{where}.url", item.get("url"))
    secret = check_secret(f"{where}.secret", item.get("secret"))
    events = _events(f"{where}.events", item.get("events"))
    name = item.get("name")
    if name is None:
        name = default_name(url)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{where}.name: must be 1-64 letters, digits, '_', '.' or '-' (got {name!r})"
        )
    return WebhookEndpoint(name, url, SecretStr(secret), events)


def default_name(url: str) -> str:
    """An endpoint's name when none is given: its URL's host (and port), e.g. ``hooks.a.com``
    or ``127.0.0.1-8080``."""
    parts = urlsplit(url)
    name = (parts.hostname or "") + (f"-{parts.port}" if parts.port else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:64]


_LOOPBACK_NAMES = frozenset({"localhost"})


def check_url(field: str, url: Any) -> str:
    """https, or http to a loopback address only (events must not travel in clear)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"{field}: is required: the endpoint's https:// URL")
    shown = _shown_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{field}: is not a valid URL (got {shown!r})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{field}: must be an https:// URL (got {shown!r})")
    if parts.scheme == "http" and not _loopback(host):
        raise ValueError(
            f"{field}: must be https:// outside loopback; http:// is allowed only to "
            f"127.0.0.0/8, ::1 or localhost (got {shown!r})"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{field}: must not hold a user or password (got {shown!r})")
    return url


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown_url(url: str) -> str:
    """The URL without its query (which may carry a token) and at most 120 characters."""
    shown = url.split("?", 1)[0] + ("?…" if "?" in url else "")
    return shown if len(shown) <= 120 else shown[:117] + "..."


def check_secret(field: str, secret: Any) -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 to 64 bytes. Never echoed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(
            f"{field}: must be a Standard Webhooks secret, whsec_ followed by base64 "
            "(make one with: threadcast webhooks secret)"
        )
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}: the part after whsec_ is not valid base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"{field}: must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes "
            f"(it decodes to {len(key)})"
        )
    return secret


def _events(field: str, events: Any) -> frozenset[EventType]:
    known = ", ".join(e.value for e in EventType)
    if events == ALL_EVENTS or events == [ALL_EVENTS]:
        return frozenset(EventType)
    if not isinstance(events, list) or not events:
        raise ValueError(f'{field}: must be a non-empty list of event types or "*" ({known})')
    found: set[EventType] = set()
    for j, name in enumerate(events):
        if name == ALL_EVENTS:
            return frozenset(EventType)
        try:
            found.add(EventType(name))
        except ValueError:
            raise ValueError(
                f'{field}[{j}]: {name!r} is not an event type; use {known} or "*"'
            ) from None
    return frozenset(found)


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks format (32 random bytes)."""
    import secrets

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
