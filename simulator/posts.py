"""The record of every accepted post: what a rehearsal is judged by.

A duplicate is an accepted post whose (tenant, group, channel, contentType, content) equals an
earlier accepted one, whichever of the two message endpoints either came through (contentType
normalised to 0 text / 1 html): exactly what threadcast must never produce, whatever retries
it makes.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clock import iso_utc

_DuplicateKey = tuple[str, str, str, int, str]
CHATTHREADS = "chatthreads"
CHANNEL_MESSAGES = "channel-messages"
MESSAGE_UPDATE = "message-update"
"""``PATCH /v1.0/teams/{team-id}/channels/{channel-id}/messages/{message-id}``."""
MESSAGE_SOFT_DELETE = "message-soft-delete"
"""``POST /v1.0/teams/{team-id}/channels/{channel-id}/messages/{message-id}/softDelete``."""
JOINED_TEAMS = "joined-teams"
"""``GET /v1.0/me/joinedTeams``."""
LIST_CHANNELS = "list-channels"
"""``GET /v1.0/teams/{team-id}/channels``."""
MESSAGE_EDITS = frozenset({MESSAGE_UPDATE, MESSAGE_SOFT_DELETE})
READS = frozenset({JOINED_TEAMS, LIST_CHANNELS})


@dataclass(frozen=True, slots=True)
class PostAttempt:
    """A Graph request that passed authentication and validation: a message POST (either
    endpoint; the only kind the post log records), or, for the policies (throttle, faults), a
    message edit or an audience read (``endpoint`` says which; their content is empty)."""

    tenant_id: str
    client_id: str
    group_id: str
    channel_id: str
    content_type: int
    content: str
    raw_body: bytes
    request_id: str
    client_request_id: str | None
    retry_attempt: str | None
    received_at: float
    endpoint: str = CHATTHREADS
    message_id: str | None = None
    """The new message's id, for the endpoint that answers with one (channel-messages)."""

    def duplicate_key(self) -> _DuplicateKey:
        return (self.tenant_id, self.group_id, self.channel_id, self.content_type, self.content)


@dataclass(frozen=True, slots=True)
class RecordedPost:
    seq: int
    attempt: PostAttempt
    duplicate_of: int | None
    """Sequence number of the first identical post, None if this one is the first."""
    delayed_answer: bool = False
    """Recorded, but its answer was held back (``--fault-accept-delay``): the client may never
    learn that it was posted."""

    def to_json(self) -> dict[str, object]:
        attempt = self.attempt
        return {
            "seq": self.seq,
            "tenant": attempt.tenant_id,
            "client_id": attempt.client_id,
            "group": attempt.group_id,
            "channel": attempt.channel_id,
            "content_type": attempt.content_type,
            "content": attempt.content,
            "raw_body": attempt.raw_body.decode("utf-8", "backslashreplace"),
            "client_request_id": attempt.client_request_id,
            "retry_attempt": attempt.retry_attempt,
            "request_id": attempt.request_id,
            "received_at": iso_utc(attempt.received_at),
            "duplicate_of": self.duplicate_of,
            "endpoint": attempt.endpoint,
            "message_id": attempt.message_id,
            "delayed_answer": self.delayed_answer,
        }


class PostLog:
    def __init__(self) -> None:
        self._posts: list[RecordedPost] = []
        self._first_seq: dict[_DuplicateKey, int] = {}
        self.duplicates = 0

    def record(self, attempt: PostAttempt, *, delayed_answer: bool = False) -> RecordedPost:
        seq = len(self._posts) + 1
        key = attempt.duplicate_key()
        first = self._first_seq.setdefault(key, seq)
        duplicate_of = None if first == seq else first
        if duplicate_of is not None:
            self.duplicates += 1
        post = RecordedPost(seq, attempt, duplicate_of, delayed_answer)
        self._posts.append(post)
        return post

    @property
    def accepted(self) -> int:
        return len(self._posts)

    @property
    def unique(self) -> int:
        return len(self._first_seq)

    def page(self, offset: int, limit: int) -> list[RecordedPost]:
        return self._posts[offset : offset + limit]

    def reset(self) -> None:
        self._posts.clear()
        self._first_seq.clear()
        self.duplicates = 0
