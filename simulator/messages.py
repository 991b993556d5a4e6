"""Every version of every v1.0 channel message: what an edit-and-recall rehearsal is judged by.

A message posted through ``POST /v1.0/teams/{team-id}/channels/{channel-id}/messages`` is kept
with its versions in order: ``created`` (version 1), one ``edited`` per accepted PATCH, and
``soft_deleted`` for the accepted softDelete. A softDelete of a message already deleted is
answered ``204`` (see :mod:`simulator.graph`) but adds no version: it is counted as a repeat.

A message belongs to the tenant whose user posted it, in its team and channel: looked up with
any other tenant, team or channel it does not exist (404), as for a client Graph knows
nothing of a message it cannot see.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from simulator.clock import iso_utc
from simulator.messageparts import MessageParts
from simulator.posts import PostAttempt

CREATED = "created"
EDITED = "edited"
SOFT_DELETED = "soft_deleted"
VERSION_KINDS = (CREATED, EDITED, SOFT_DELETED)


@dataclass(frozen=True, slots=True)
class MessageVersion:
    number: int
    kind: str
    at: float
    request_id: str
    client_request_id: str | None
    parts: MessageParts

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.number,
            "kind": self.kind,
            "at": iso_utc(self.at),
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            **self.parts.to_json(),
        }


@dataclass(slots=True)
class StoredMessage:
    message_id: str
    tenant_id: str
    client_id: str
    team_id: str
    channel_id: str
    versions: list[MessageVersion] = field(default_factory=list)
    repeated_soft_deletes: int = 0

    @property
    def parts(self) -> MessageParts:
        return self.versions[-1].parts

    @property
    def deleted_at(self) -> float | None:
        last = self.versions[-1]
        return last.at if last.kind == SOFT_DELETED else None

    @property
    def history(self) -> str:
        """The kinds of its versions in order, e.g. ``created>edited>soft_deleted``."""
        return ">".join(version.kind for version in self.versions)

    def add(self, kind: str, attempt: PostAttempt, parts: MessageParts) -> MessageVersion:
        version = MessageVersion(
            len(self.versions) + 1,
            kind,
            attempt.received_at,
            attempt.request_id,
            attempt.client_request_id,
            parts,
        )
        self.versions.append(version)
        return version

    def to_json(self) -> dict[str, object]:
        deleted_at = self.deleted_at
        return {
            "message_id": self.message_id,
            "tenant": self.tenant_id,
            "client_id": self.client_id,
            "team": self.team_id,
            "channel": self.channel_id,
            "created_at": iso_utc(self.versions[0].at),
            "deleted_at": None if deleted_at is None else iso_utc(deleted_at),
            "history": self.history,
            "repeated_soft_deletes": self.repeated_soft_deletes,
            "versions": [version.to_json() for version in self.versions],
        }


class MessageStore:
    def __init__(self, counts: Counter[str] | None = None, *, parts: bool = False) -> None:
        self.parts = parts
        """``message_parts``: messages take every chatMessage part, not the body only."""
        self._messages: dict[str, StoredMessage] = {}
        self.counts: Counter[str] = counts if counts is not None else Counter()
        """created / edited / soft_deleted versions, and soft_delete_repeats (shared with
        :class:`~simulator.counters.Counters`, which ``/_sim/stats`` reports)."""

    def create(self, attempt: PostAttempt, parts: MessageParts) -> StoredMessage:
        message = StoredMessage(
            str(attempt.message_id),
            attempt.tenant_id,
            attempt.client_id,
            attempt.group_id,
            attempt.channel_id,
        )
        message.add(CREATED, attempt, parts)
        self._messages[message.message_id] = message
        self.counts[CREATED] += 1
        return message

    def find(self, tenant_id: str, team_id: str, channel_id: str, message_id: str) -> StoredMessage:
        """The message, or ``KeyError`` if this tenant has none by that id in that channel."""
        message = self._messages[message_id]
        if (message.tenant_id, message.team_id, message.channel_id) != (
            tenant_id,
            team_id,
            channel_id,
        ):
            raise KeyError(message_id)
        return message

    def get(self, message_id: str) -> StoredMessage | None:
        return self._messages.get(message_id)

    def edit(self, message: StoredMessage, attempt: PostAttempt, parts: MessageParts) -> None:
        message.add(EDITED, attempt, parts)
        self.counts[EDITED] += 1

    def soft_delete(self, message: StoredMessage, attempt: PostAttempt) -> bool:
        """Delete it (a new version); False, and counted as a repeat, if it already was."""
        if message.deleted_at is not None:
            message.repeated_soft_deletes += 1
            self.counts["soft_delete_repeats"] += 1
            return False
        message.add(SOFT_DELETED, attempt, message.parts)
        self.counts[SOFT_DELETED] += 1
        return True

    @property
    def total(self) -> int:
        return len(self._messages)

    def page(self, offset: int, limit: int) -> list[StoredMessage]:
        # dicts keep insertion order: messages in the order they were created.
        return list(self._messages.values())[offset : offset + limit]

    def summary(self) -> dict[str, object]:
        """What a rehearsal asserts: ``{"messages", "versions": {kind: n}, ..., "histories"}``."""
        histories: Counter[str] = Counter(m.history for m in self._messages.values())
        return {
            "messages": len(self._messages),
            "versions": {kind: self.counts[kind] for kind in VERSION_KINDS},
            "soft_delete_repeats": self.counts["soft_delete_repeats"],
            "histories": dict(sorted(histories.items())),
        }

    def reset(self) -> None:
        self._messages.clear()
        self.counts.clear()
