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
