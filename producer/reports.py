"""What a broadcast's status is, as one typed value every surface renders.

:class:`BroadcastReport` is built once, by :func:`producer.status.report`, from the ledger;
``threadcast status`` prints it as text (:func:`producer.status.render`) or JSON
(:func:`producer.status.as_json`), and ``GET /v1/broadcasts/{id}`` answers it as its response
model. A field added here therefore reaches all three (tests/integration/test_api_report.py
checks it does). Nothing here reads the ledger: the HTTP API imports it for its schema.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from threadcast.contract import ContentType
from threadcast.endpoints import Switch
from threadcast.ledger import ErrorLine, WaitLine


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True)


class EndpointReport(_Report):
    """Where the deployment's posts go, and where this broadcast's attempts went."""

    setting: str = Field(description="THREADCAST_ENDPOINT: auto, chatthreads or channel-messages")
    active: str = Field(description="the Graph endpoint a post goes to now")
    summary: str = Field(description="the same in one line, as `threadcast status` prints it")
    switch: Switch | None = Field(
        description="the deployment's one switch to v1.0 channel messages (auto), as the "
        "ledger records it: when, why, by which worker; null: none recorded"
    )
    attempts: dict[str, dict[str, int]] = Field(
        description="this broadcast's attempts per endpoint and outcome; `rerouted`: one that "
        "met the removed beta segment and went on to v1.0 under the same claim"
    )


class MessageReport(_Report):
    """What the broadcast's message carries beside its body, and the endpoint that implies."""

    parts: str = Field(
        default="a body only",
        description="what the message carries beside its body, e.g. 'a subject, importance "
        "urgent, 1 card, 1 image'; 'a body only' for none",
    )
    personal: bool = Field(
        default=False,
        description="its content (and subject) is filled in per delivery with each target's "
        "variables",
    )
    goes_by: str | None = Field(
        default=None,
        description="the Graph endpoint the message goes by whatever the deployment's: "
        "'channel-messages' when it has parts beyond its body; null: the deployment's endpoint",
    )
    summary: str = Field(
        default="a body only, by the deployment's endpoint",
        description="the same in one line, as `threadcast status` prints it",
    )


class ChangeErrors(_Report):
    """A change's failed or unknown deliveries with one error code."""

    state: str = Field(description="failed or unknown")
    error_code: str = Field(description="Graph's error code ('-': none was given)")
    example: str | None = Field(description="one of their error messages")
    count: int


class ChangeReport(_Report):
    """One edit or recall of a sent broadcast, and what became of each delivery's message."""

    id: str = Field(description="the change's id")
    number: int = Field(description="1, 2, ... per broadcast, in the order they were made")
    kind: str = Field(description="edit (every message PATCHed) or recall (soft-deleted)")
    state: str = Field(description="running, done, or superseded by a later change")
    source: str = Field(description="the name of the API key (or the CLI) that asked for it")
    created_at: datetime
    finished_at: datetime | None = Field(description="null: still running")
    counts: dict[str, int] = Field(
        description="deliveries per item state, every state present: pending, in_flight, "
        "done, failed, unknown, no_message_id (sent by the seed's chatthreads endpoint: Graph "
        "gave no message id to change), not_sent (no message: the delivery was not sent), "
        "superseded (a later change came first)"
    )
    errors: list[ChangeErrors] = Field(
        description="its failed and unknown deliveries per error code, most frequent first"
    )
    summary: str = Field(description="the same in one line, as `threadcast status` prints it")


class BroadcastReport(_Report):
    """A broadcast and where its deliveries stand."""

    broadcast_id: str
    source: str = Field(description="the name of the API key (or the CLI) that sent it")
    content_type: ContentType
    created_at: datetime
    send_at: datetime | None = Field(description="its send time; null: sent at once")
    total: int = Field(description="its deliveries (distinct targets)")
    counts: dict[str, int] = Field(description="deliveries per state; every state is present")
    settled: int = Field(
        description="deliveries at an end: sent, failed or cancelled (progress: settled/total)"
    )
    done: bool = Field(description="nothing is moving any more")
    waiting: list[WaitLine] = Field(
        description="queued or retrying deliveries held for a reason (a channel's daily quota "
        "until midnight UTC, a retry time), counted per state and reason, with the latest time "
        "one of them may go again"
    )
    message: MessageReport = Field(
        default_factory=MessageReport,
        description="what the message carries beside its body, whether it is personal, and "
        "the endpoint it goes by",
    )
    endpoint: EndpointReport
    errors: list[ErrorLine] = Field(description="the latest failed attempts, newest first")
    changes: list[ChangeReport] = Field(
        default_factory=list,
        description="its edits and recall (threadcast edit / recall), oldest first; empty: none",
    )


class ChangeList(_Report):
    """A broadcast's edits and recall, oldest first."""

    broadcast_id: str
    changes: list[ChangeReport]


class ChangeAttemptReport(_Report):
    """One PATCH (edit) or softDelete (recall) of one delivery's message."""

    number: int = Field(description="1, 2, ... per delivery in the change")
    worker: str = Field(description="the worker that made it")
    started_at: datetime
    finished_at: datetime | None = Field(description="null: no answer recorded (yet)")
    client_request_id: str
    outcome: str | None = Field(
        description="done, pending (to go again), failed, unknown, abandoned (its worker was "
        "lost; made again); null: in flight"
    )
    http_status: int | None
    request_id: str | None = Field(description="Graph's request-id")
    error_code: str | None
    error_message: str | None
    retry_after: float | None
    latency_ms: float | None


class DeliveryAttempts(_Report):
    """One delivery's message in one change: its state, and every request made for it."""

    broadcast_id: str
    change_id: str
    number: int = Field(description="the change's number in its broadcast")
    kind: str = Field(description="edit or recall")
    delivery_id: str
    state: str = Field(description="the delivery's item state in the change (as in `counts`)")
    attempts: list[ChangeAttemptReport] = Field(description="oldest first")


class BroadcastSummary(_Report):
    """A broadcast in a listing (``threadcast list``): who sent it, when, and how far it got.
    The fields it shares with :class:`BroadcastReport` mean the same there."""

    broadcast_id: str
    source: str = Field(description="the name of the API key (or the CLI) that sent it")
    content_type: ContentType
    created_at: datetime
    send_at: datetime | None = Field(description="its send time; null: sent at once")
    cancelled_at: datetime | None = Field(
        default=None, description="when it was cancelled; null: not cancelled"
    )
    total: int = Field(description="its deliveries (distinct targets)")
    counts: dict[str, int] = Field(description="deliveries per state; every state is present")
    settled: int = Field(
        description="deliveries at an end: sent, failed or cancelled (progress: settled/total)"
    )
    done: bool = Field(description="nothing is moving any more")


class BroadcastPage(_Report):
    """One page of broadcasts, newest first, and the cursor of the next."""

    broadcasts: list[BroadcastSummary]
    next_after: str | None = Field(
        description="the id to pass as `after` (`--after`) for the next page; null: no more"
    )


class Estimate(_Report):
    """How fast a broadcast goes and how long it has left (``status --watch``)."""

    remaining: int = Field(description="deliveries still moving on their own")
    rate: float | None = Field(
        description="deliveries settled per second over the last refreshes; null: not measured yet"
    )
    limit_rate: float | None = Field(
        description="the most per second the configured rate limits let this broadcast's "
        "remaining deliveries go, given their tenants and teams; null: nothing remains"
    )
    seconds_left: float | None = Field(
        description="remaining / the smaller of rate and limit_rate, and no earlier than the "
        "latest time a waiting delivery may go again; null: unknown (nothing settled lately)"
    )
    summary: str = Field(description="the same in a few words, as `status --watch` prints it")
