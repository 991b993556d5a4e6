"""Which Microsoft Graph endpoint posts, and the deployment's one-time switch to v1.0.

The seed's endpoint is the beta ``POST /groups/{id}/channels/{id}/chatthreads``. Microsoft
removed that segment around 2020: the request now answers ``400 BadRequest`` "Resource not
found for the segment 'chatThreads'." -- an answer that proves nothing was posted. Its
successor is v1.0 ``POST /teams/{id}/channels/{id}/messages``.

``THREADCAST_ENDPOINT=auto`` (the default) tries the seed's request first; the first answer
proving the segment gone switches the whole deployment to the successor, once: the switch is
written to the ledger (durable, first writer wins) and copied to Redis (read by every worker
process about once a second), so neither a restart, nor another host, nor a flushed Redis
tries the dead endpoint again. ``chatthreads`` and ``channel-messages`` pin one endpoint.

Each endpoint's delegated permissions, least-privileged first: ``channel-messages`` takes
``ChannelMessage.Send`` (or ``Group.ReadWrite.All``, kept for backward compatibility);
``chatthreads`` takes ``Group.ReadWrite.All`` only. ``threadcast login`` asks for the least
the deployment may need.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Final, Literal

import redis

from threadcast.constants import ENDPOINT_KEY
from threadcast.ledger import DeploymentFacts

log = logging.getLogger("threadcast.endpoints")

CHATTHREADS: Final = "chatthreads"
CHANNEL_MESSAGES: Final = "channel-messages"
AUTO: Final = "auto"
Setting = Literal["auto", "chatthreads", "channel-messages"]

GROUP_READWRITE_ALL: Final = "Group.ReadWrite.All"
CHANNEL_MESSAGE_SEND: Final = "ChannelMessage.Send"
#: The delegated permissions each endpoint accepts.
ACCEPTED_SCOPES: Final = {
    CHATTHREADS: frozenset({GROUP_READWRITE_ALL}),
    CHANNEL_MESSAGES: frozenset({CHANNEL_MESSAGE_SEND, GROUP_READWRITE_ALL}),
}
GRAPH_SCOPES: Final = frozenset({GROUP_READWRITE_ALL, CHANNEL_MESSAGE_SEND})
TEAM_READ_BASIC_ALL: Final = "Team.ReadBasic.All"
CHANNEL_READ_BASIC_ALL: Final = "Channel.ReadBasic.All"
#: What resolving audiences reads (``GET /me/joinedTeams``, ``GET /teams/{id}/channels``):
#: asked for at login only with ``THREADCAST_AUDIENCES=true``.
AUDIENCE_SCOPES: Final = (TEAM_READ_BASIC_ALL, CHANNEL_READ_BASIC_ALL)
CHANNEL_MESSAGE_READ_WRITE: Final = "ChannelMessage.ReadWrite"
#: What editing and recalling sent messages needs (PATCH and softDelete of a channel
#: message): asked for at login only with ``THREADCAST_CHANGES=true``.
CHANGE_SCOPES: Final = (CHANNEL_MESSAGE_READ_WRITE,)
_GRAPH_PREFIX = "https://graph.microsoft.com/"

_FACT = "endpoint"
_SEGMENT_GONE = "resource not found for the segment 'chatthreads'"


def segment_gone(status: int | None, message: str | None) -> bool:
    """Graph's answer to the seed's request since the beta segment was removed."""
    return status == 400 and message is not None and _SEGMENT_GONE in message.lower()


@dataclass(frozen=True)
class Switch:
    """The deployment moved to ``endpoint`` at ``at``, because Graph answered ``reason``."""

    endpoint: str
    at: str  # ISO 8601, UTC
    reason: str
    worker: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Switch:
        return cls(**json.loads(raw))

    def describe(self) -> str:
        return (
            f"{self.endpoint} (switched from {CHATTHREADS} at {self.at}: Graph answered "
            f"{self.reason!r})"
        )


def active(setting: str, switch: Switch | None) -> str:
    """The endpoint a post goes to now."""
    if setting != AUTO:
        return setting
    return switch.endpoint if switch is not None else CHATTHREADS


def login_scope(setting: str, switch: Switch | None) -> str:
    """The one Graph permission ``threadcast login`` asks for: the least the deployment may
    need (``chatthreads`` may still be tried while ``auto`` has not switched)."""
    if active(setting, switch) == CHANNEL_MESSAGES:
        return CHANNEL_MESSAGE_SEND
    return GROUP_READWRITE_ALL


def login_scopes(
    setting: str, switch: Switch | None, *, audiences: bool, changes: bool = False
) -> list[str]:
    """Every Graph permission ``threadcast login`` asks for: :func:`login_scope`, the
    audience reads when audiences are enabled, the message edits when changes are."""
    scopes = [login_scope(setting, switch)]
    if audiences:
        scopes += AUDIENCE_SCOPES
    if changes:
        scopes += CHANGE_SCOPES
    return scopes


def describe(setting: str, switch: Switch | None) -> str:
    """One line for ``status``, ``accounts`` and ``doctor``."""
    if setting != AUTO:
        return f"{setting} (pinned by THREADCAST_ENDPOINT)"
    if switch is None:
        return f"{CHATTHREADS} (auto: the seed's endpoint, until Graph says it is gone)"
    return f"auto: {switch.describe()}"


def granted_scopes(cache: dict[str, object], tenant: str) -> list[str]:
    """The Graph permissions a tenant's cached access tokens carry (MSAL's cache as JSON),
    newest token first: what its sign-in was granted, so a refresh asks for the same (the
    audience reads and the message edits too, when the sign-in asked for them)."""
    entries = cache.get("AccessToken")
    tokens = (
        [t for t in entries.values() if t.get("realm") == tenant]
        if isinstance(entries, dict)
        else []
    )
    for token in sorted(tokens, key=lambda t: int(t.get("cached_at", 0)), reverse=True):
        names = scope_names(token.get("target"))
        found = [n for n in names if n in GRAPH_SCOPES]
        if found:
            extra = (*AUDIENCE_SCOPES, *CHANGE_SCOPES)
            return found + [n for n in names if n in extra]
    return []


def scope_names(target: object) -> list[str]:
    """A token's space-separated scopes as bare Graph permission names."""
    return [s.removeprefix(_GRAPH_PREFIX) for s in str(target or "").split()]


def recorded(facts: DeploymentFacts) -> Switch | None:
    """The switch as the ledger holds it (the truth; Redis only copies it)."""
    stored = facts.get(_FACT)
    return None if stored is None else Switch.from_json(stored)


class EndpointRecord:
    """The switch as stored: the ledger's row is the truth, Redis holds a copy for speed."""

    def __init__(self, client: redis.Redis, facts: DeploymentFacts) -> None:
        self._redis = client
        self._facts = facts

    def read(self) -> Switch | None:
        """Redis's copy, else the ledger's row (copied back to a Redis that lost it)."""
        fast = self.read_fast()
        if fast is not None:
            return fast
        stored = recorded(self._facts)
        if stored is not None:
            self._copy(stored.to_json())
        return stored

    def read_fast(self) -> Switch | None:
        """Redis only (the hot path's periodic look); None when Redis is away or empty."""
        try:
            raw = self._redis.get(ENDPOINT_KEY)
        except redis.RedisError:
            return None
        return None if raw is None else Switch.from_json(raw)

    def record(self, switch: Switch, now: datetime) -> tuple[Switch, bool]:
        """Record the switch unless one is recorded; returns the switch in force and
        whether this call made it (exactly one caller in the deployment does)."""
        made = self._facts.put_once(_FACT, switch.to_json(), now)
        if not made:
            switch = recorded(self._facts) or switch
        self._copy(switch.to_json())
        return switch, made

    def _copy(self, raw: str) -> None:
        try:
            self._redis.set(ENDPOINT_KEY, raw)
        except redis.RedisError as exc:
            # The ledger has it: every process finds it there on its next start.
            log.warning("cannot copy the endpoint switch to Redis: %s", exc)
