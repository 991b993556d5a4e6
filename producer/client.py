"""The producer's Python API: validate a broadcast, then hand it to the lifecycle
(threadcast.lifecycle.Intake), which records it and publishes its deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from types import TracebackType

import redis

from producer.sendtime import check_send_at
from threadcast import ids
from threadcast.contract import Broadcast, ContentType, Target, check_text
from threadcast.errors import ValidationError
from threadcast.ledger import DeliveryState, Ledger
from threadcast.ledger.broadcasts import RETRYABLE
from threadcast.lifecycle import Intake, Publisher
from threadcast.settings import Settings, load_settings
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

    def send(
        self,
        content: str,
        targets: Iterable[Target | Mapping[str, object]],
        *,
        content_type: str | ContentType = ContentType.HTML,
        broadcast_id: str | None = None,
        send_at: datetime | None = None,
        source: str = "python",
        now_if_past: bool = False,
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
        """
        check_send_at("send_at", send_at, datetime.now(UTC), now_if_past=now_if_past)
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
        )
        accepted = self._intake.accept(
            broadcast, chain(broadcast.targets, stream), datetime.now(UTC)
        )
        return SendResult(
            broadcast.id,
            accepted.deliveries,
            accepted.created,
            accepted.published,
            accepted.scheduled,
        )

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
        return self._intake.retry(
            broadcast_id, wanted, datetime.now(UTC), error_code=error_code, tenant=tenant
        )

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
