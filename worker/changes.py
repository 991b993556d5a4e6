"""Running an edit or a recall: a PATCH or softDelete of every message a broadcast created.

A Celery task (``threadcast.change``) names a change; the worker that takes it runs it under
the change's lease in the ledger (threadcast/ledger/changes.py), one at a time per change and
in order per broadcast. In a loop, until nothing of it is due:

1. the deliveries sent since the change was made are taken in (``sync``);
2. its due items, in the deliveries' order, each get a permit (threadcast/dispatch/changes.py:
   the edits' own app and tenant limits, the team's and channel's per-second logs shared
   with the posts); a full tenant or app skips the rest of that tenant this round;
3. each request goes out the moment its permit is taken (on the process's asyncio loop, many
   at once), and the ones sent become ``in_flight`` with an attempt row, in one transaction,
   before any answer is recorded;
4. each answer is judged and recorded: 2xx ``done``; 429 and 5xx again after Retry-After or
   a backoff (the throttled scope cools down); no answer again (an edit or a recall made
   twice leaves the message as made once), ``unknown`` once the attempts run out; a 401
   again at once with a fresh token (the refused one is dropped), until the attempts run
   out; a 403 for want of ChannelMessage.ReadWrite, and any other answer, ``failed`` with
   Graph's code.

A tenant without a usable token waits (``waiting_auth``, tried again a minute later; no
attempt is used). When nothing is due, the runner gives the change back: the gate hands it
out again when its next item is due, or 10 s later while deliveries of the broadcast may
still be sent; the change is done once none can and every one sent was changed.

A kill leaves items ``in_flight`` (or ``pending``, between a request and its attempt row): the
next runner (the gate hands the change out again within a minute, the scheduler's sweep if
Redis lost it) makes their requests again; a PATCH or softDelete made twice leaves the
message as made once.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from threadcast.contract import ContentType
from threadcast.dispatch.changes import TENANT_WIDE, ChangeGate
from threadcast.errors import (
    BrokerError,
    IdentityError,
    NotFoundError,
    SignInRequiredError,
    TokenCacheError,
    ValidationError,
)
from threadcast.ids import new_request_id
from threadcast.ledger import Ledger
from threadcast.ledger.changes import (
    ChangeItem,
    ChangeMessage,
    ItemResult,
    ItemState,
    Take,
)
from threadcast.personal import compiled, fill
from threadcast.tokens import TokenProvider
from worker.graph import (
    Change,
    GraphClient,
    GraphReply,
    channel_message_body,
    chat_message_body,
    reply_of,
)
from worker.policy import RetryPolicy, missing_consent

#: A 403 for want of permission: the sign-in predates THREADCAST_CHANGES.
CONSENT_NOTE = (
    "the tenant's sign-in lacks ChannelMessage.ReadWrite: set THREADCAST_CHANGES=true, run "
    "threadcast login --tenant TENANT, then ask for the edit or recall again (its failed "
    "deliveries go again)"
)

log = logging.getLogger("threadcast.changes")

LEASE_SECONDS = (
    60.0  # a runner's lease on its change, at least (and THREADCAST_HTTP_TIMEOUT + 20 s)
)
_DRAIN_GRACE = 10.0  # seconds past the HTTP timeout a stopping runner waits for its answers
# How often the lease is renewed, which is also how soon a runner learns that a later change
# (a recall, a newer edit) superseded its change: that one waits until this runner stops.
_RENEW_EVERY = 1.0
_DUE_PAGE = 200  # items read per query
_REFETCH = 0.25  # seconds between reads of the due items while some are in flight
_FLUSH_EVERY = 0.1  # seconds between writes of requests made and answers come
_MAX_IN_FLIGHT = 400  # requests of one change in flight: the app's 300 edits/s at 1 s answers
_IDLE_RETURN = 5.0  # give the change back when its next item is due later than this
_UNSETTLED_AGAIN = 5.0  # while deliveries may still be sent, look again this often
_SIGN_IN_WAIT = 60.0  # a tenant without a token: its items are tried again after this
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass
class _Flight:
    item: ChangeItem
    number: int
    request_id: str
    token: str


class ChangeRunner:
    def __init__(
        self,
        ledger: Ledger,
        gate: ChangeGate,
        tokens: TokenProvider,
        graph: GraphClient,
        policy: RetryPolicy,
        name: str,
        http_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``http_timeout``: a request's longest wait; the lease outlasts it, so that a
        runner that stops (superseded, failing) can wait for its requests in flight before
        a later change of the broadcast may start."""
        self._book = ledger.changes
        self._gate = gate
        self._tokens = tokens
        self._graph = graph
        self._policy = policy
        self._name = name
        self._clock = clock
        self._http_timeout = http_timeout
        self._lease = timedelta(seconds=max(LEASE_SECONDS, http_timeout + _DRAIN_GRACE * 2))
        self._rng = random.Random()  # noqa: S311 - jitter, not secrecy

    def run(self, change_id: str) -> None:
        """Run the change as far as it goes now; tell the gate when to run it again."""
        # One runner per run, not per process: two threads of a process handed the same
        # change (announced twice) must not both run it.
        runner = f"{self._name}/{uuid.uuid4().hex[:12]}"
        now = _now()
        try:
            taken = self._book.take(change_id, runner, now, now + self._lease)
        except NotFoundError:  # not in this ledger (reset, or another deployment's)
            log.error("change %s is not in the ledger: dropped from the gate", change_id)
            self._gate.finished(change_id)
            return
        if taken is Take.FINISHED:
            self._gate.finished(change_id)
            return
        if taken is Take.HELD:
            return  # its runner tells the gate when to run it again
        if taken is Take.BEHIND:
            self._gate.announce(change_id, time.time() + 1.0)
            return
        again: float | None = time.time() + _UNSETTLED_AGAIN
        try:
            again = _Run(self, change_id, runner).run()
        finally:
            self._book.resign(change_id, runner, _now())
            if again is None:
                self._gate.finished(change_id)
            else:
                self._gate.announce(change_id, again)


class _Run:
    """One runner's turn at one change."""

    def __init__(self, runner: ChangeRunner, change_id: str, name: str) -> None:
        self.r = runner
        self.id = change_id
        self.name = name
        self.book = runner._book
        self.message = self.book.message(change_id)  # None: a recall
        self.flights: dict[Future[GraphReply], _Flight] = {}
        self.renewed = runner._clock()
        self.held = True
        # When a tenant's app or tenant edit scope (by tenant), or an item's team or channel
        # (by delivery), may next have room (monotonic): learnt from the permits refused.
        self.tenant_full: dict[str, float] = {}
        self.item_full: dict[str, float] = {}
        # What was done and not yet written (_flush), and when the due items were read.
        self.started: list[tuple[str, int, str]] = []
        self.results: list[ItemResult] = []
        self.flushed = time.monotonic()
        self.fetched_at = -math.inf
        self.page_full = False

    def run(self) -> float | None:
        """Work until nothing is due; None when the change is done, else when to come back
        (epoch seconds)."""
        self.book.sync(self.id, _now())
        due: list[ChangeItem] = []
        try:
            while True:
                self._keep_lease()
                due, wait_for = self._turn(due)
                if self.flights:
                    self._land(wait_for)
                elif not self.held:
                    return time.time()  # superseded or lost: the gate decides what follows
                elif due:
                    time.sleep(min(max(wait_for, 0.005), 1.0))
                elif not (due := self._fetch()) and not self.book.sync(self.id, _now()):
                    pause = self._idle()
                    if pause is None or pause > _IDLE_RETURN:
                        return None if pause is None else time.time() + pause
                    time.sleep(pause)
                self._flush(soon=True)
        finally:
            self._drain()
            self._flush()

    def _turn(self, due: list[ChangeItem]) -> tuple[list[ChangeItem], float]:
        """Launch what may go; the items left and how long to wait for an answer (until one
        of them may get a permit, or a second when none waits)."""
        if not self.held or len(self.flights) >= _MAX_IN_FLIGHT:
            return due, 1.0
        since = time.monotonic() - self.fetched_at
        if (not due and self.page_full) or since >= _REFETCH:
            # Items whose retry time came, the next page, other tenants' items behind a full
            # tenant's: read again, the full tenants' left out, merged with what waits here.
            known = {item.delivery_id for item in due}
            due += [item for item in self._fetch() if item.delivery_id not in known]
        due, until_room = self._launch(due)
        return due, max(until_room, 0.002) if due else 1.0

    def _drain(self) -> None:
        """However the run ends, its requests in flight are waited for (at most the HTTP
        timeout and a grace, within the lease) and their answers recorded: a later change
        of the broadcast starts only once this runner resigns, and no request of this one
        may land after it."""
        deadline = time.monotonic() + self.r._http_timeout + _DRAIN_GRACE
        while self.flights and time.monotonic() < deadline:
            try:
                self._land(max(deadline - time.monotonic(), 0.0))
            except Exception:  # judging needs Redis (a cooldown): record what can be
                log.exception("change %s: answers in flight could not all be judged", self.id)
                return

    def _fetch(self) -> list[ChangeItem]:
        """The due items, read once what this runner did is written (an item launched and
        not yet written still reads ``pending``)."""
        self._flush()
        now = time.monotonic()
        full = [tenant for tenant, until in self.tenant_full.items() if until > now]
        found = self.book.due(self.id, _now(), _DUE_PAGE, skip=full)
        self.fetched_at, self.page_full = time.monotonic(), len(found) == _DUE_PAGE
        flying = {flight.item.delivery_id for flight in self.flights.values()}
        return [item for item in found if item.delivery_id not in flying]

    def _flush(self, *, soon: bool = False) -> None:
        """Write the requests made and the answers come, in one transaction: every
        _FLUSH_EVERY seconds while they come (``soon``), else now. A request's row always
        goes in before its answer's (the same transaction, in that order)."""
        if not self.started and not self.results:
            return
        if soon and time.monotonic() - self.flushed < _FLUSH_EVERY:
            return
        self.book.write(self.id, self.name, self.started, self.results, _now())
        self.started, self.results = [], []
        self.flushed = time.monotonic()

    def _idle(self) -> float | None:
        """Nothing due now: None if the change is done, else the seconds until it may have
        work again."""
        if self.book.complete(self.id, _now()):
            return None
        next_due = self.book.next_due(self.id)
        if next_due is None:
            return _UNSETTLED_AGAIN + _IDLE_RETURN  # deliveries may still be sent: come back
        return max((next_due - _now()).total_seconds(), 0.0)

    def _keep_lease(self) -> None:
        if not self.held or self.r._clock() - self.renewed < _RENEW_EVERY:
            return
        now = _now()
        self.held = self.book.renew(self.id, self.name, now, now + self.r._lease)
        self.renewed = self.r._clock()
        if not self.held:
            log.warning("change %s: its lease was lost or it was superseded; stopping", self.id)

    # -- launching ---------------------------------------------------------------------------
    def _launch(self, due: list[ChangeItem]) -> tuple[list[ChangeItem], float]:
        """Each item's request as its permit is taken, then their attempt rows in one
        transaction. Returns the items still to go and how long until a permit may be had
        for them."""
        launched = 0
        rest: list[ChangeItem] = []
        settled: list[ItemResult] = []  # no request made: waiting for a sign-in, or unfit
        room = _MAX_IN_FLIGHT - len(self.flights)
        later = _now() + timedelta(seconds=_SIGN_IN_WAIT)
        now = time.monotonic()
        for item in due:
            # A tenant whose app or tenant edit scope had no room is not asked again before
            # that scope may have room (no Redis call per item per round).
            if self._waits(item) > now or launched >= room:
                rest.append(item)
                continue
            prepared = self._prepare(item, later)
            if isinstance(prepared, ItemResult):
                settled.append(prepared)
                continue
            token, body = prepared
            request_id = new_request_id()
            permit = self.r._gate.permit(item.tenant, item.group, item.channel, request_id)
            if not permit:
                rest.append(item)
                until = time.monotonic() + permit.wait
                if permit.full in TENANT_WIDE:
                    self.tenant_full[item.tenant] = until
                else:
                    self.item_full[item.delivery_id] = until
                continue
            # Sent the moment its permit is taken: the permit's time is the request's, as
            # Graph counts it (a ledger write in between would let a window's arrivals
            # bunch up behind it and overrun the next one).
            flight = _Flight(item, item.attempts + 1, request_id, token)
            self._send(flight, body)
            self.started.append((item.delivery_id, flight.number, request_id))
            launched += 1
        # Their attempt rows soon after (_flush), always before their answers'. A kill in
        # between leaves the item pending: the next runner makes its request again, which
        # leaves the message as made once.
        self.results += settled
        return rest, self._until_room(rest)

    def _waits(self, item: ChangeItem) -> float:
        """Until when (monotonic) no permit is to be had for the item: its tenant's edit
        scope, or its own team or channel, had no room when last asked."""
        return max(
            self.tenant_full.get(item.tenant, 0.0), self.item_full.get(item.delivery_id, 0.0)
        )

    def _until_room(self, rest: list[ChangeItem]) -> float:
        """Seconds until one of ``rest`` may get a permit (0: now, or when a flight lands)."""
        now = time.monotonic()
        soonest = math.inf
        for item in rest:
            waits = self._waits(item)
            if waits <= now:
                return 0.0
            soonest = min(soonest, waits)
        return 0.0 if soonest == math.inf else soonest - now

    def _prepare(self, item: ChangeItem, later: datetime) -> tuple[str, bytes] | ItemResult:
        """Its token and request body; or why it goes without a request now."""
        try:
            body = b"" if self.message is None else _body(self.message, item)
        except ValidationError as exc:  # checked when the edit was made: not from here
            return _unsent(item, ItemState.FAILED, "unfilled", str(exc))
        try:
            return self.r._tokens.token(item.tenant), body
        except (SignInRequiredError, TokenCacheError, BrokerError, IdentityError) as exc:
            return _unsent(item, ItemState.PENDING, "waiting_auth", str(exc), later)

    def _send(self, flight: _Flight, body: bytes) -> None:
        item = flight.item
        change = Change(
            item.group,
            item.channel,
            item.message_id,
            self.message is None,
            flight.token,
            body,
            flight.request_id,
            flight.number,
        )
        self.flights[self.r._graph.change(change)] = flight

    # -- answers -----------------------------------------------------------------------------
    def _land(self, timeout: float) -> None:
        done, _ = wait(list(self.flights), timeout=timeout, return_when=FIRST_COMPLETED)
        results = []
        for future in done:
            flight = self.flights.pop(future)
            results.append(self._judge(flight, reply_of(future)))
        self.results += results

    def _judge(self, flight: _Flight, reply: GraphReply) -> ItemResult:
        item, policy = flight.item, self.r._policy
        if reply.ok:
            return _answered(flight, reply, ItemState.DONE)
        if missing_consent(reply):
            return _answered(flight, reply, ItemState.FAILED, note=CONSENT_NOTE)
        if reply.status == 401:
            self.r._tokens.reject(item.tenant, flight.token)
        elif reply.status == 429 and reply.retry_after is not None:
            self.r._gate.cool_down(item.tenant, item.group, item.channel, reply.retry_after)
        elif reply.status is not None and reply.status not in _TRANSIENT:
            return _answered(flight, reply, ItemState.FAILED)
        # No answer (an edit or recall made twice leaves the message as made once), 401, 429,
        # 5xx: again, until the attempts run out.
        if flight.number >= policy.max_attempts:
            state = ItemState.UNKNOWN if reply.maybe_sent else ItemState.FAILED
            return _answered(flight, reply, state, note=f"gave up after {flight.number} attempts")
        delay = (
            0.0
            if reply.status == 401
            else policy.backoff(flight.number, reply.retry_after, self.r._rng)
        )
        return _answered(flight, reply, ItemState.PENDING, delay)


def _answered(
    flight: _Flight,
    reply: GraphReply,
    state: ItemState,
    later: float | None = None,
    note: str = "",
) -> ItemResult:
    message = reply.error_message
    if note:
        message = f"{note}: {message}" if message else note
    return ItemResult(
        flight.item.delivery_id,
        flight.number,
        flight.request_id,
        state,
        http_status=reply.status,
        request_id=reply.request_id,
        error_code=reply.error_code,
        error_message=message,
        retry_after=reply.retry_after,
        latency_ms=reply.latency_ms,
        next_attempt_at=None if later is None else _now() + timedelta(seconds=later),
        outcome="retry" if state is ItemState.PENDING else "",
    )


def _body(message: ChangeMessage, item: ChangeItem) -> bytes:
    """The PATCH body: the edit's whole message, filled in with the delivery's variables
    if personal (v1.0's chatMessage; a mention of the channel or team names its own)."""
    html = message.content_type is ContentType.HTML
    content, parts = message.content, message.parts
    if message.personal:
        variables = item.variables or {}
        content = fill(compiled("content", content, html), variables, "content")
        if parts.subject is not None:
            subject = fill(compiled("subject", parts.subject, False), variables, "subject")
            parts = replace(parts, subject=subject)
    if parts.beyond_body:
        return chat_message_body(parts.chat_message(content, html, item.group, item.channel))
    return channel_message_body(content, message.content_type)


def _unsent(
    item: ChangeItem, state: ItemState, code: str, text: str, later: datetime | None = None
) -> ItemResult:
    """An item settled without a request (no attempt is used)."""
    return ItemResult(
        item.delivery_id,
        item.attempts,
        "",
        state,
        error_code=code,
        error_message=text,
        next_attempt_at=later,
    )


def _now() -> datetime:
    return datetime.now(UTC)
