"""The job contract: what a broadcast is, and the one delivery form that crosses from
producer to worker -- a gate entry in Redis (what the producer writes, compact, with the time
it may go from), then a Celery message (what the dispatcher hands a worker, with its permit).

Both are deliberately tiny and versioned: they name a delivery, nothing more. The ledger
holds the content and the target, so a delivery can be queued again at any time (after a
lost Redis, by an operator's retry) without carrying state that could go stale. A Celery
message's one argument is such a message or a list of up to MAX_BATCH of them (the
dispatcher sends batches; each element is validated on its own).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from threadcast import ids
from threadcast.constants import ENTRY_VERSION, MAX_BATCH, MAX_CONTENT_BYTES, MESSAGE_VERSION
from threadcast.errors import ThreadcastError, ValidationError
from threadcast.message import MessageParts
from threadcast.personal import Template, check_variables, compiled
from threadcast.text import check_text


class ContentType(enum.StrEnum):
    """The two body types of a chat message; Graph's beta endpoint wants them as integers."""

    TEXT = "text"
    HTML = "html"

    @property
    def wire(self) -> int:
        """The integer contentType of the chatthreads request body (0 text, 1 html)."""
        return 0 if self is ContentType.TEXT else 1

    @classmethod
    def parse(cls, field_name: str, value: object) -> ContentType:
        if value not in ("text", "html"):
            raise ValidationError(field_name, value, "must be 'text' or 'html'")
        return cls(str(value))


@dataclass(frozen=True, slots=True)
class Target:
    """One channel of one team in one tenant, and the variables its delivery's personal text
    is filled in with (threadcast/personal.py; None: none given). Two targets naming the same
    channel are the same target, whatever their variables."""

    tenant: str
    group: str
    channel: str
    variables: Mapping[str, str] | None = field(default=None, compare=False)
    # Where it was read (``targets.csv line 7``, ``targets.json item 3``): an error about its
    # variables names that rather than its index among the targets.
    origin: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, where: str, raw: object) -> Target:
        """Validate a mapping with keys tenant, group, channel; any other key is a variable of
        its personal text. ``where`` prefixes field names."""
        if not isinstance(raw, Mapping):
            raise ValidationError(where, raw, "must be an object with tenant, group and channel")
        variables = None
        if len(raw) > 3:
            extra = {k: v for k, v in raw.items() if k not in _TARGET_FIELDS}
            variables = check_variables(where, extra) if extra else None
        valid = ids.valid_target(raw.get("tenant"), raw.get("group"), raw.get("channel"))
        if valid is not None:
            return cls(*valid, variables)
        return cls(
            tenant=ids.guid(f"{where}.tenant", raw.get("tenant")),
            group=ids.guid(f"{where}.group", raw.get("group")),
            channel=ids.channel_id(f"{where}.channel", raw.get("channel")),
            variables=variables,
        )


_TARGET_FIELDS = frozenset({"tenant", "group", "channel"})


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One message for many channels: validated, immutable, ready to be written."""

    id: str
    content: str
    content_type: ContentType
    targets: tuple[Target, ...]
    source: str = "python"
    send_at: datetime | None = None
    # Everything beside the body (subject, importance, cards, images, mentions): with any of
    # it the broadcast goes by Graph's v1.0 endpoint.
    parts: MessageParts = field(default_factory=MessageParts)
    # The content (and subject) is a template filled in per delivery with its target's
    # variables (threadcast/personal.py); every target must then give what it uses.
    personal: bool = False

    def __post_init__(self) -> None:
        ids.broadcast_id("broadcast_id", self.id)
        check_content(self.content)
        html = self.content_type is ContentType.HTML
        if self.parts.beyond_body:
            self.parts.check(self.content, html)
        if self.personal:
            self.templates()
        if not self.targets:
            raise ValidationError("targets", [], "must name at least one channel")
        if self.send_at is not None:
            _check_send_at(self.send_at)
        if not isinstance(self.source, str) or not self.source or len(self.source) > 200:
            raise ValidationError("source", self.source, "must be 1-200 characters")
        check_text("source", self.source)

    def templates(self) -> list[Template]:
        """The texts filled in per delivery (content, and the subject if any), compiled;
        empty unless the broadcast is personal. A ValidationError names a broken template."""
        if not self.personal:
            return []
        html = self.content_type is ContentType.HTML
        found = [compiled("content", self.content, html)]
        if self.parts.subject is not None:
            found.append(compiled("subject", self.parts.subject, False))
        return found

    def deliveries(self) -> list[Delivery]:
        """One delivery per distinct target, in the order given (duplicates collapse)."""
        seen: dict[str, Delivery] = {}
        delivery_id = ids.delivery_ids(self.id)
        for target in self.targets:
            did = delivery_id(target.tenant, target.group, target.channel)
            if did not in seen:
                seen[did] = Delivery(did, self.id, target)
        return list(seen.values())


def _check_send_at(send_at: datetime) -> None:
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise ValidationError("send_at", send_at.isoformat(), "must include a UTC offset")
    try:
        # The ledger stores UTC: 9999-12-31T23:59:59-12:00 is in year 10000 there.
        send_at.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            "send_at", send_at.isoformat(), "is out of range: it must fall in years 1-9999 in UTC"
        ) from None


def check_content(content: object) -> str:
    """Content must be non-empty storable text within the Teams message size limit."""
    if not isinstance(content, str) or not content.strip():
        raise ValidationError("content", content, "must be non-empty text")
    check_text("content", content)
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise ValidationError(
            "content", f"<{size} bytes>", f"must be at most {MAX_CONTENT_BYTES} bytes (28 KB)"
        )
    return content


@dataclass(frozen=True, slots=True)
class Delivery:
    """One target of one broadcast."""

    id: str
    broadcast_id: str
    target: Target

    def message(self) -> DeliveryMessage:
        t = self.target
        return DeliveryMessage(self.id, self.broadcast_id, t.tenant, t.group, t.channel)


class ContractError(ThreadcastError):
    """A Celery message that does not follow the contract (garbage, unknown version, …)."""


@dataclass(frozen=True, slots=True)
class DeliveryMessage:
    """One delivery on its way: where it waits in Redis, and the Celery message body.

    It names the delivery and the scopes it counts against (tenant, team = group, channel);
    content and everything else stay in the ledger. ``permit`` is the rate-limit permit the
    dispatcher issued with it (None while it waits).
    """

    delivery_id: str
    broadcast_id: str
    tenant: str
    group: str
    channel: str
    permit: str | None = None
    ready_at: float | None = None  # when it became free to go (waiting-room only)
    version: int = field(default=MESSAGE_VERSION)

    def to_wire(self) -> dict[str, Any]:
        """The Celery message body (JSON)."""
        return {
            "v": self.version,
            "delivery": self.delivery_id,
            "broadcast": self.broadcast_id,
            "tenant": self.tenant,
            "group": self.group,
            "channel": self.channel,
            "permit": self.permit,
        }

    @classmethod
    def from_wire(cls, raw: object) -> DeliveryMessage:
        """Validate a received message; every failure is a ContractError naming the problem."""
        if not isinstance(raw, Mapping):
            raise ContractError(f"message must be a JSON object, got {type(raw).__name__}")
        if raw.get("v") != MESSAGE_VERSION:
            raise ContractError(f"unknown message version {raw.get('v')!r}")
        extra = set(raw) - _WIRE_FIELDS
        if extra:
            raise ContractError(f"unexpected message fields {sorted(extra)}")
        permit = raw.get("permit")
        if permit is not None and (not isinstance(permit, str) or len(permit) > 100):
            raise ContractError(f"invalid permit {permit!r:.60}")
        try:
            return cls(
                delivery_id=ids.guid("delivery", raw.get("delivery")),
                broadcast_id=ids.broadcast_id("broadcast", raw.get("broadcast")),
                tenant=ids.guid("tenant", raw.get("tenant")),
                group=ids.guid("group", raw.get("group")),
                channel=ids.channel_id("channel", raw.get("channel")),
                permit=permit,
            )
        except ValidationError as exc:
            raise ContractError(f"invalid message: {exc}") from None

    def entry(self, ready_at: float) -> str:
        """The gate's form (version ENTRY_VERSION): compact, no permit, with the time it may
        go from (which also tells how long the rate limits held it)."""
        at = round(ready_at, 3)
        try:
            if type(at) is float and at - at == 0.0:  # finite: json writes float.__repr__
                # The same text json.dumps(..., separators=(",", ":")) writes, without its
                # encoder's set-up per call (the producer writes 100,000 of these at once).
                return (
                    f'{{"v":{ENTRY_VERSION},"d":{_quote(self.delivery_id)},'
                    f'"b":{_quote(self.broadcast_id)},'
                    f'"t":{_quote(self.tenant)},"g":{_quote(self.group)},'
                    f'"c":{_quote(self.channel)},"a":{float.__repr__(at)}}}'
                )
        except TypeError:  # a field that is not a str: json.dumps decides
            pass
        return json.dumps(
            {
                "v": ENTRY_VERSION,
                "d": self.delivery_id,
                "b": self.broadcast_id,
                "t": self.tenant,
                "g": self.group,
                "c": self.channel,
                "a": at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_entry(cls, raw: str | bytes, permit: str | None = None) -> DeliveryMessage:
        """Read a gate entry; a ContractError names what is wrong (an unknown version, a
        missing field, not JSON)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ContractError(f"gate entry is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError(f"gate entry must be a JSON object, got {type(data).__name__}")
        version = data.get("v", 1)
        if version != ENTRY_VERSION:
            raise ContractError(f"unknown gate entry version {version!r}")
        fields = [data.get(name) for name in ("d", "b", "t", "g", "c")]
        if not all(isinstance(value, str) for value in fields):
            raise ContractError(f"gate entry lacks one of d, b, t, g, c: {sorted(data)}")
        d, b, t, g, c = (str(value) for value in fields)
        return cls(d, b, t, g, c, permit, data.get("a"))


def batch_to_wire(messages: Sequence[DeliveryMessage]) -> list[dict[str, Any]]:
    """A Celery message carrying several deliveries: a list of version-1 messages."""
    return [m.to_wire() for m in messages]


def batch_from_wire(raw: object) -> tuple[list[DeliveryMessage], list[tuple[object, str]]]:
    """Validate a received message: one delivery (an object) or a batch (a list of them).

    Returns the valid deliveries and, for each element that breaks the contract, the element
    and why: one bad element never costs its neighbours their delivery.
    """
    if not isinstance(raw, list):
        try:
            return [DeliveryMessage.from_wire(raw)], []
        except ContractError as exc:
            return [], [(raw, str(exc))]
    if not raw or len(raw) > MAX_BATCH:
        return [], [(raw, f"a batch must hold 1 to {MAX_BATCH} messages, got {len(raw)}")]
    good: list[DeliveryMessage] = []
    bad: list[tuple[object, str]] = []
    for element in raw:
        try:
            good.append(DeliveryMessage.from_wire(element))
        except ContractError as exc:
            bad.append((element, str(exc)))
    return good, bad


_quote = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder
_WIRE_FIELDS = frozenset({"v", "delivery", "broadcast", "tenant", "group", "channel", "permit"})
