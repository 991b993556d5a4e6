"""The HTTP API's request and response bodies (they are the OpenAPI schema too).

Request models refuse unknown fields and wrong JSON types; what a value must look like (a
GUID, a channel id, a broadcast id, content size, send time) is checked once, by the
Producer, so the API and the CLI can never disagree about it. A broadcast's status is not
here: ``GET /v1/broadcasts/{id}`` answers :class:`producer.reports.BroadcastReport`, the one
report ``threadcast status`` shows too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from threadcast.ledger import DeliveryRow, DeliveryState

_EXAMPLE_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_EXAMPLE_GROUP = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
_EXAMPLE_CHANNEL = "19:09fc54a3141a45d0bc769cf506d2e079@thread.tacv2"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetIn(_Request):
    """A channel; any other field is a variable of the broadcast's personal text."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "additionalProperties": {"type": ["string", "number"]},
            "description": "tenant, group and channel; any other field is a variable of the "
            "personal text ({{ name }} in the content), the same ones on every target",
        },
    )

    tenant: str = Field(max_length=64, description="tenant id (GUID)", examples=[_EXAMPLE_TENANT])
    group: str = Field(
        max_length=64, description="the team's group id (GUID)", examples=[_EXAMPLE_GROUP]
    )
    channel: str = Field(
        max_length=256, description="Teams channel id", examples=[_EXAMPLE_CHANNEL]
    )


class CardIn(_Request):
    id: str = Field(
        max_length=64, description='the body places it with <attachment id="ID"></attachment>'
    )
    content: dict[str, Any] | str = Field(
        description='the Adaptive Card: a JSON object with "type": "AdaptiveCard" (or its text)'
    )


class ImageIn(_Request):
    name: str = Field(max_length=64, description='the body shows it with <img src="image:NAME">')
    data: str = Field(description="the image's bytes, base64 (PNG, JPEG or GIF, at most 3 MiB)")
    content_type: Literal["image/png", "image/jpeg", "image/gif"] | None = Field(
        default=None, description="optional: must match the bytes"
    )


class MentionIn(_Request):
    id: int = Field(ge=0, description='the body names it with <at id="ID">TEXT</at>')
    text: str = Field(max_length=200, description="the <at> element's text")
    kind: Literal["user", "channel", "team"] = Field(
        description="a user; or each delivery's own channel or team"
    )
    user_id: str | None = Field(default=None, max_length=64, description="kind user: Entra id")
    user_name: str | None = Field(
        default=None, max_length=200, description="kind user: display name"
    )


class MessageIn(_Request):
    """A message: its body and the parts beside it (a broadcast's, or an edit's)."""

    content: str = Field(
        description="the message, at most 28 KB as UTF-8; with variables on the targets, a "
        "template: {{ name }} is filled in per delivery (HTML-escaped into HTML)"
    )
    content_type: Literal["text", "html"] = "html"
    subject: str | None = Field(default=None, description="subject line, 1-255 characters")
    importance: Literal["normal", "high", "urgent"] = "normal"
    cards: list[CardIn] = Field(default=[], description="Adaptive Cards (at most 10)")
    images: list[ImageIn] = Field(default=[], description="inline images (at most 10)")
    mentions: list[MentionIn] = Field(default=[], description="mentions (at most 100)")

    def part_fields(self) -> dict[str, Any]:
        """The parts as ``Producer.send`` and ``Producer.edit`` take them."""
        return {
            "subject": self.subject,
            "importance": self.importance,
            "cards": [card.model_dump() for card in self.cards],
            "images": [image.model_dump() for image in self.images],
            "mentions": [mention.model_dump() for mention in self.mentions],
        }


class EditIn(MessageIn):
    """An edit: the whole new message every message of the broadcast becomes (a personal
    broadcast's content and subject are templates filled in with each delivery's variables)."""


class BroadcastIn(MessageIn):
    audiences: list[str] = Field(
        default=[],
        max_length=100,
        description="audience specs resolved through Graph when the broadcast is accepted, "
        "their channels joining the targets: 'tenant=T;channel=NAME' (that channel in every "
        "team the tenant's signed-in user joined), 'tenant=T;team=G[;channel=NAME]', "
        "'saved=NAME' (threadcast audience save)",
        examples=[[f"tenant={_EXAMPLE_TENANT};channel=General"]],
    )
    targets: list[TargetIn] = Field(
        default=[],
        validate_default=True,
        description="channels to post to (at least one target or audience)",
    )
    send_at: datetime | None = Field(
        default=None, description="send time, RFC 3339 with a UTC offset; omit to send now"
    )
    broadcast_id: str | None = Field(
        default=None,
        max_length=128,
        description="your own id: sending the same broadcast again with it creates nothing new",
        examples=["maintenance-2026-11-30"],
    )

    @field_validator("send_at", mode="before")
    @classmethod
    def _send_at_text(cls, value: object) -> object:
        # pydantic would read a bare number as a Unix time; the contract is RFC 3339 text.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an RFC 3339 date-time string")
        return value

    @field_validator("targets")
    @classmethod
    def _somewhere(cls, value: list[TargetIn], info: ValidationInfo) -> list[TargetIn]:
        # ``audiences`` comes first, so it is known here (absent: it was itself invalid).
        if not value and info.data.get("audiences", [None]) == []:
            raise ValueError("give targets, audiences or both: at least one channel")
        return value


class RetryIn(_Request):
    states: list[DeliveryState] = Field(
        default=[DeliveryState.FAILED, DeliveryState.UNKNOWN],
        min_length=1,
        description="re-queue deliveries in these states: failed, unknown, cancelled, "
        "waiting_auth (any other is refused)",
    )
    error_code: str | None = Field(
        default=None, max_length=200, description="only those whose last error has this code"
    )
    tenant: str | None = Field(default=None, max_length=64, description="only this tenant's")


class BroadcastAccepted(BaseModel):
    broadcast_id: str
    deliveries: int = Field(description="distinct targets")
    created: bool = Field(description="false: this broadcast id was recorded before")
    published: int = Field(description="deliveries handed to the workers now")
    scheduled: bool = Field(description="waiting for its send time")


class ChangeMade(BaseModel):
    """An edit or the recall as recorded (``created`` false: asked for before)."""

    id: str = Field(description="the change's id")
    broadcast_id: str
    number: int = Field(description="1, 2, ... per broadcast")
    kind: Literal["edit", "recall"]
    state: str = Field(description="running, done or superseded")
    source: str = Field(description="the API key's name")
    created_at: datetime
    finished_at: datetime | None
    counts: dict[str, int] = Field(
        description="deliveries per item state, every state present (docs/API.md)"
    )
    created: bool = Field(description="false: the same change was asked for before")
    superseded: list[str] = Field(description="the running changes it replaced")
    again: int = Field(
        description="asked for again: its failed and unknown deliveries that go again"
    )


class ResolvedTarget(BaseModel):
    tenant: str
    group: str
    channel: str
    team_name: str | None = Field(description="as Graph named it (null: an explicit target)")
    channel_name: str | None


class AudienceCount(BaseModel):
    audience: str = Field(description="the spec, or 'targets' for the explicit ones")
    channels: int


class EstimateOut(BaseModel):
    seconds: float | None = Field(description="null: a tenant's limits hold its deliveries")
    bound: str = Field(description="the limit that decides it")
    backlog: int = Field(description="deliveries queued or retrying now")
    backlog_ahead: int = Field(description="of those, in these targets' tenants")
    quota_days: int = Field(description="extra days the channels' daily quota spreads them")
    limits: str
    text: str = Field(description="the estimate as threadcast send --dry-run prints it")


class DryRun(BaseModel):
    """What a broadcast would go to, and how long it would take; nothing stored."""

    audiences: list[AudienceCount]
    targets: list[ResolvedTarget]
    per_tenant: dict[str, int]
    estimate: EstimateOut


class DeliveryList(BaseModel):
    deliveries: list[DeliveryRow]  # the ledger's own rows, as they are
    next_after: int | None = Field(description="pass as `after` for the next page; null: last")


class Cancelled(BaseModel):
    broadcast_id: str
    cancelled: int


class Requeued(BaseModel):
    broadcast_id: str
    requeued: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    ledger: bool
    redis: bool


class FieldError(BaseModel):
    field: str = Field(description="e.g. targets[2].tenant")
    message: str


class ErrorDetail(BaseModel):
    status: int
    message: str
    fields: list[FieldError] = []


class ErrorBody(BaseModel):
    error: ErrorDetail
