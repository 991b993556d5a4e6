"""The producer's Python API: validate a broadcast, then hand it to the lifecycle
(threadcast.lifecycle.Intake), which records it and publishes its deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from producer import changes
from producer.audiences import AudienceResolver, Estimate, Resolution, estimate, parse_specs
from producer.sendtime import check_send_at
from threadcast import ids
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import AudienceError, ValidationError
from threadcast.ledger import DeliveryQueries, DeliveryState, Ledger
from threadcast.ledger.broadcasts import RETRYABLE
from threadcast.ledger.changes import ChangeInfo, Made
from threadcast.lifecycle import Intake, Publisher, gates
from threadcast.message import Card, Image, Importance, Mention, MessageParts
from threadcast.personal import Filling, Template
from threadcast.settings import Settings, load_settings
from threadcast.text import check_text
from threadcast.tokencache import signed_in

DEFAULT_RETRY_STATES = (DeliveryState.FAILED, DeliveryState.UNKNOWN)


@dataclass(frozen=True)
class SendResult:
    broadcast_id: str
    deliveries: int  # distinct targets
    created: bool  # False: this broadcast id was recorded before (nothing new written)
    published: int  # messages put on the queue now
    scheduled: bool  # waiting for its send time


class Producer:
    """Sends broadcasts. Use as a context manager, or call :meth:`close`.

    >>> with Producer() as producer:                                   # doctest: +SKIP
    ...     result = producer.send("<h1>Hello</h1>", targets, content_type="html")
    ...     print(result.broadcast_id)
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.ledger = Ledger.open(self.settings.database_url)
        self._redis = redis.Redis.from_url(self.settings.redis_url)
        self._publisher = Publisher(self.settings.redis_url)
        self._intake = Intake(self.ledger, self._publisher)
        self._changes = gates.changes(self._redis, self.settings)

    def send(
        self,
        content: str,
        targets: Iterable[Target | Mapping[str, object]] = (),
        *,
        audiences: Sequence[str] = (),
        content_type: str | ContentType = ContentType.HTML,
        broadcast_id: str | None = None,
        send_at: datetime | None = None,
        source: str = "python",
        now_if_past: bool = False,
        subject: str | None = None,
        importance: str | Importance = Importance.NORMAL,
        cards: Iterable[CardInput] = (),
        images: Iterable[ImageInput] = (),
        mentions: Iterable[MentionInput] = (),
        parts: MessageParts | None = None,
    ) -> SendResult:
        """Validate everything, write the broadcast and all its deliveries in one transaction,
        then publish them. Sending the same broadcast id again writes nothing new and
        re-publishes only deliveries still ``queued`` (duplicates are harmless: a delivery
        is claimed once). Raises ValidationError naming the field; nothing is written then.
        ``send_at`` (with a UTC offset) schedules it: ``threadcast scheduler`` sends it
        when due. A send time in the past is refused unless ``now_if_past`` (then it goes now).

        ``targets`` may be any iterable, a generator too: it is read once, a target at a
        time, each validated and written as it comes, all in the one transaction that a bad
        target anywhere rolls back. What stays in memory per target is its delivery id
        (~125 bytes: duplicates and the fingerprint of a re-send need them).

        Beside the body (docs/API.md "Message parts"): ``subject``, ``importance``
        (``normal``, ``high``, ``urgent``), ``cards`` (each a :class:`Card`, a mapping
        ``{"id", "content"}`` whose content is the card's JSON object or text, or a ``Path``
        to a card's JSON file, its id the file's stem), ``images`` (an :class:`Image`, a
        mapping ``{"name", "data", "content_type"?}`` with ``data`` bytes, base64 text or a
        ``Path``, or a ``Path``, its name the file's stem; the body refers to it as
        ``<img src="image:NAME">``) and ``mentions`` (a :class:`Mention` or a mapping
        ``{"id", "text", "kind", "user_id"?, "user_name"?}``); or all of them at once as
        ``parts``. A broadcast with any of them needs HTML content and the v1.0 endpoint: with
        ``THREADCAST_ENDPOINT=chatthreads`` it is refused.

        Personal text: when the first target carries variables (the extra keys of a target
        mapping, the extra columns of a targets file) the content and subject are templates
        (``{{ team_name }}``) filled in per delivery, and every target must give every
        variable they use: one that does not is a ValidationError naming it
        (``targets[7].team_name``), nothing written.

        ``audiences`` (specs, ``producer/audiences.py``: ``tenant=T;channel=General``,
        ``tenant=T;team=G``, ``saved=NAME``) are checked, then resolved through Graph now
        (before the broadcast and its targets are), and their channels join ``targets``
        (duplicates once). An audience that cannot
        be resolved is an AudienceError naming it (``audiences[1]``), one resolving to no
        channel too; Graph unavailable is a GraphUnavailableError; nothing written either way.
        """
        check_send_at("send_at", send_at, datetime.now(UTC), now_if_past=now_if_past)
        parts = given_parts(
            self.settings,
            parts,
            subject=subject,
            importance=importance,
            cards=cards,
            images=images,
            mentions=mentions,
        )
        if audiences:
            resolved = self.resolve(audiences)
            if not resolved.targets:
                raise AudienceError("audiences", list(audiences), "resolved to no channel")
            targets = chain(targets, resolved.targets)
        stream = _targets(targets, self._signed_in)
        first = next(stream, None)
        # Validated as any broadcast is, with its first target; the others stream past it
        # into the ledger.
        broadcast = Broadcast(
            id=broadcast_id or ids.new_broadcast_id(),
            content=content,
            content_type=ContentType.parse("content_type", content_type),
            targets=() if first is None else (first,),
            source=source,
            send_at=send_at,
            parts=parts,
            personal=first is not None and first.variables is not None,
        )
        accepted = self._intake.accept(
            broadcast,
            checked_variables(broadcast, chain(broadcast.targets, stream)),
            datetime.now(UTC),
        )
        return SendResult(
            broadcast.id,
            accepted.deliveries,
            accepted.created,
            accepted.published,
            accepted.scheduled,
        )

    def resolve(self, audiences: Sequence[str], *, where: str = "audiences") -> Resolution:
        """What ``audiences`` resolve to through Graph now (each spec's channels, the distinct
        targets, the team and channel names): nothing is stored. Errors name ``where[i]``."""
        parse_specs(where, audiences)  # every spec checked before Graph is asked anything
        with AudienceResolver(self.settings, self.ledger, self._redis) as resolver:
            return resolver.resolve(audiences, where)

    def estimate(self, targets: Sequence[Target]) -> Estimate:
        """How long sending to ``targets`` would take under the configured limits, behind the
        deliveries queued or retrying now (``send --dry-run``)."""
        backlog = DeliveryQueries(self.ledger.engine).backlog_by_team()
        return estimate(self.settings, targets, backlog)

    def cancel(self, broadcast_id: str) -> int:
        """Cancel every delivery not yet sent (in-flight posts finish and are recorded): once
        this returns, no post of the broadcast starts. The ledger refuses every later claim;
        the gate's mark (written before returning) also stops a delivery claimed just before
        the cancel from starting its POST, and lets its waiting entries go without a permit.
        With Redis unreachable the ledger's cancel still holds (docs/RELIABILITY.md)."""
        return self._intake.cancel(broadcast_id, datetime.now(UTC))

    def retry(
        self,
        broadcast_id: str,
        states: Sequence[DeliveryState | str] = DEFAULT_RETRY_STATES,
        *,
        error_code: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Re-queue the broadcast's matching deliveries with a fresh retry budget and publish
        them; returns how many. ``states`` may name only failed, unknown, cancelled and
        waiting_auth: any other is a ValidationError naming it (``states[i]``)."""
        wanted = [retry_state(f"states[{i}]", s) for i, s in enumerate(states)]
        if not wanted:
            raise ValidationError("states", [], "must name at least one state")
        if error_code is not None:
            check_text("error_code", error_code)  # compared in SQL: NUL would be an outage
        if tenant is not None:
            tenant = ids.guid("tenant", tenant)
        recalled = self.ledger.changes.recall_of(broadcast_id)
        if recalled is not None:
            raise ValidationError(
                "broadcast_id",
                broadcast_id,
                f"was recalled (change {recalled}): its deliveries are not sent again",
            )
        now = datetime.now(UTC)
        count = self._intake.retry(broadcast_id, wanted, now, error_code=error_code, tenant=tenant)
        if count:
            # What they post is the broadcast's first message: its latest edit (if done) runs
            # again and edits them once sent.
            edit = self.ledger.changes.reopen_edit(broadcast_id, now)
            if edit is not None:
                self._changes.announce(edit)
        return count

    def edit(
        self,
        broadcast_id: str,
        content: str,
        *,
        content_type: str | ContentType = ContentType.HTML,
        subject: str | None = None,
        importance: str | Importance = Importance.NORMAL,
        cards: Iterable[CardInput] = (),
        images: Iterable[ImageInput] = (),
        mentions: Iterable[MentionInput] = (),
        parts: MessageParts | None = None,
        source: str = "python",
    ) -> Made:
        """Change every message the broadcast created into this one (a PATCH of each, by
        the workers, under the edits' own rate limits; docs/API.md "Edit and recall").

        The edit is a whole new message, given and checked as :meth:`send` takes one (a
        personal broadcast's edit is a template filled in with each delivery's variables).
        Deliveries sent later are edited once sent; one the seed's chatthreads endpoint sent
        has no message id and is shown ``no_message_id``. The same edit asked for again
        returns the change made before and sends its failed deliveries again. Needs
        THREADCAST_CHANGES=true. A ValidationError names what is wrong; nothing is written."""
        changes.require_enabled(self.settings)
        given = given_parts(
            self.settings,
            parts,
            subject=subject,
            importance=importance,
            cards=cards,
            images=images,
            mentions=mentions,
        )
        kind = ContentType.parse("content_type", content_type)
        check_text("source", source)
        return changes.edit(
            self.ledger,
            self._changes,
            broadcast_id,
            content,
            kind,
            given,
            source,
            datetime.now(UTC),
        )

    def recall(self, broadcast_id: str, *, source: str = "python") -> Made:
        """Withdraw the broadcast: what was not sent yet is cancelled, every message sent is
        soft-deleted (by the workers, under the edits' rate limits). Asked again, it returns
        the recall made before and sends its failed deliveries again. Needs
        THREADCAST_CHANGES=true."""
        changes.require_enabled(self.settings)
        check_text("source", source)
        now = datetime.now(UTC)
        self.ledger.broadcasts.source(broadcast_id)  # NotFoundError before anything changes
        self._intake.cancel(broadcast_id, now)
        return changes.recall(self.ledger, self._changes, broadcast_id, source, now)

    def changes(self, broadcast_id: str) -> list[ChangeInfo]:
        """The broadcast's edits and recall, oldest first, with their deliveries' counts."""
        self.ledger.broadcasts.source(broadcast_id)
        return self.ledger.changes.of_broadcast(broadcast_id)

    def _signed_in(self, tenant: str) -> bool:
        return signed_in(self._redis, self.ledger.token_caches, tenant)

    def close(self) -> None:
        self._publisher.close()
        self._redis.close()
        self.ledger.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def retry_state(field: str, value: DeliveryState | str) -> DeliveryState:
    """``value`` as a state a retry may take, or a ValidationError naming ``field`` and it."""
    try:
        state = DeliveryState(value)
    except ValueError:
        raise ValidationError(field, value, f"is not a state; use one of {_RETRYABLE}") from None
    if state not in RETRYABLE:
        raise ValidationError(
            field,
            value,
            f"'{state}' deliveries cannot be retried (they are on their way, or sent); only "
            f"{_RETRYABLE} ones can",
        )
    return state


_RETRYABLE = ", ".join(sorted(s.value for s in RETRYABLE))


def _targets(
    raw: Iterable[Target | Mapping[str, object]], signed_in: Callable[[str], bool]
) -> Iterator[Target]:
    """Each target validated as it is reached, refused at the first whose tenant never
    signed in (as tokencache.require_signed_in does: each tenant looked up once)."""
    if isinstance(raw, (str, bytes, Mapping)):
        raise ValidationError("targets", raw, "must be a list of targets")
    checked: set[str] = set()
    for i, item in enumerate(raw):
        target = item if isinstance(item, Target) else Target.parse(f"targets[{i}]", item)
        if target.tenant not in checked:
            if not signed_in(target.tenant):
                raise ValidationError(
                    f"targets[{i}].tenant",
                    target.tenant,
                    "has never signed in: run threadcast login --tenant " + target.tenant,
                )
            checked.add(target.tenant)
        yield target


#: What ``Producer.send`` takes for a card, an image and a mention (see its docstring).
CardInput = Card | Mapping[str, Any] | Path
ImageInput = Image | Mapping[str, Any] | Path
MentionInput = Mention | Mapping[str, Any]


def message_parts(
    *,
    subject: str | None = None,
    importance: str | Importance = Importance.NORMAL,
    cards: Iterable[CardInput] = (),
    images: Iterable[ImageInput] = (),
    mentions: Iterable[MentionInput] = (),
) -> MessageParts:
    """The parts beside a body, each parsed (a ValidationError names it: ``cards[1].content``,
    ``images[0].data``, ``mentions[2].kind``). How they fit the body is checked with it
    (:meth:`MessageParts.check`, which every Broadcast runs)."""
    for name, value in (("cards", cards), ("images", images), ("mentions", mentions)):
        if isinstance(value, str | bytes | Mapping):
            raise ValidationError(name, value, "must be a list")
    return MessageParts(
        subject=subject,
        importance=Importance.parse("importance", importance),
        cards=tuple(_card(f"cards[{n}]", card) for n, card in enumerate(cards)),
        images=tuple(_image(f"images[{n}]", image) for n, image in enumerate(images)),
        mentions=tuple(
            m if isinstance(m, Mention) else Mention.parse(f"mentions[{n}]", m)
            for n, m in enumerate(mentions)
        ),
    )


def given_parts(
    settings: Settings,
    parts: MessageParts | None,
    *,
    subject: str | None,
    importance: str | Importance,
    cards: Iterable[CardInput],
    images: Iterable[ImageInput],
    mentions: Iterable[MentionInput],
) -> MessageParts:
    """``parts``, or the parts the conveniences give (not both); refused when
    THREADCAST_ENDPOINT pins the seed's body-only endpoint."""
    given = message_parts(
        subject=subject, importance=importance, cards=cards, images=images, mentions=mentions
    )
    if parts is not None:
        if given.beyond_body:
            raise ValidationError(
                "parts", parts, "give either parts or subject/importance/cards/images/mentions"
            )
        if not isinstance(parts, MessageParts):
            raise ValidationError("parts", parts, "must be a MessageParts")
        given = parts
    if given.beyond_body and settings.endpoint == "chatthreads":
        raise ValidationError(
            "THREADCAST_ENDPOINT",
            settings.endpoint,
            f"posts a body only (the seed's chatthreads request); a message with "
            f"{given.describe()} needs the v1.0 endpoint: set channel-messages or auto",
        )
    return given


def _card(where: str, raw: CardInput) -> Card:
    if isinstance(raw, Card):
        return raw
    if isinstance(raw, Path):
        try:
            text = _read(where, raw).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError(where, str(raw), "is not UTF-8 text") from None
        return Card.parse(where, raw.stem, text)
    if not isinstance(raw, Mapping):
        raise ValidationError(where, raw, "must be an object with id and content")
    return Card.parse(where, raw.get("id"), raw.get("content"))


def _image(where: str, raw: ImageInput) -> Image:
    if isinstance(raw, Image):
        return raw
    if isinstance(raw, Path):
        return Image.parse(where, raw.stem, _read(where, raw))
    if not isinstance(raw, Mapping):
        raise ValidationError(where, raw, "must be an object with name and data")
    data = raw.get("data")
    if isinstance(data, Path):
        data = _read(f"{where}.data", data)
    return Image.parse(where, raw.get("name"), data, raw.get("content_type"))


def _read(where: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(where, str(path), f"cannot be read: {exc}") from None


def checked_variables(broadcast: Broadcast, targets: Iterable[Target]) -> Iterator[Target]:
    """The targets, each checked as it passes: a personal broadcast's templates filled in
    with its variables (a missing one names the target and the variable); a broadcast that
    is not personal takes no variables."""
    templates: list[Template] = broadcast.templates()
    html = broadcast.content_type is ContentType.HTML
    filling = Filling(templates, broadcast.parts, html=html) if templates else None
    for i, target in enumerate(targets):
        if filling is not None:
            filling.check(target.origin or f"targets[{i}]", target.variables or {})
        elif target.variables is not None:
            raise ValidationError(
                target.origin or f"targets[{i}]",
                sorted(target.variables),
                "carries variables but targets[0] does not: give every target the same ones",
            )
        yield target
