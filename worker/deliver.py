"""Deliveries, a batch at a time: tokens, claims, permits, POSTs in flight, outcomes.

A Celery message carries a batch; a worker thread takes it in five steps:

1. a token for each tenant in the batch (a tenant that has none waits, the others go on);
2. every delivery claimed in one transaction -- the claim and its attempt row are committed
   before any POST, so a crash mid-POST leaves a visible ``sending`` delivery that an
   expired lease turns into ``unknown``;
3. for each claim in turn: its permit confirmed right before its POST (so the rate limits
   see the real send time), then the POST handed to the process's asyncio loop -- the
   batch's posts are in flight together;
4. the answers judged as they come (a removed endpoint rerouted, a refused token retried);
5. every outcome recorded in one transaction, by the claims' holder only.

Which endpoint each delivery goes by is decided before its claim, from its broadcast's stored
message (read once per process): a message with parts beyond its body goes by v1.0 channel
messages whatever the deployment's endpoint, the others by the deployment's. The claim's
attempt row records that endpoint (:meth:`Deliverer._route`). Its body is built per delivery
only when it differs per delivery (personal text, a mention of its own channel or team);
otherwise once per broadcast and endpoint.

What a kill can leave ``unknown`` is what was in flight: the posts sent and not yet recorded.
Whatever fails before a POST gives its claim back (no request was made). Every step that
moves a delivery in the ledger or the gate is the lifecycle's (threadcast.lifecycle.Handling);
this module owns tokens, the POST and judging the answer.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from threadcast.contract import ContentType, DeliveryMessage
from threadcast.endpoints import CHANNEL_MESSAGES, CHATTHREADS, segment_gone
from threadcast.errors import (
    BrokerError,
    IdentityError,
    LedgerError,
    SignInRequiredError,
    ThreadcastError,
    TokenCacheError,
    ValidationError,
)
from threadcast.ids import new_request_id
from threadcast.ledger import Claim, DeliveryState, Outcome, Refusal, StoredMessage
from threadcast.ledger.states import REROUTED
from threadcast.lifecycle import Handling, Left
from threadcast.message import MentionKind, MessageParts
from threadcast.personal import compiled, fill
from threadcast.tokens import REFUSAL_NOTICE_SECONDS, TokenProvider
from worker.endpoint import EndpointChooser
from worker.graph import Endpoint, GraphClient, GraphReply, Post, chat_message_body, reply_of
from worker.policy import RetryPolicy, judge
from worker.settle import Posted, Settler, log_reply
from worker.tenants import TenantTroubles

log = logging.getLogger("threadcast.worker")


@dataclass(frozen=True)
class Done:
    """What became of one message: the delivery's new state (None: untouched here)."""

    state: DeliveryState | None


@dataclass(frozen=True)
class _Flight:
    """A POST on the wire: its claim, and the reply to come."""

    message: DeliveryMessage
    claim: Claim
    post: Post
    send_at: datetime | None
    reply: Future[GraphReply]


_Ready = tuple[DeliveryMessage, str]  # a message and its tenant's token
_Body = tuple[bytes, datetime | None]  # a request body and its broadcast's send time

#: A message with parts met a deployment pinned to chatthreads (whose request carries a body
#: only): the delivery fails without a POST.
PARTS_NEED_V1 = "parts_need_channel_messages"
#: A personal broadcast's delivery whose variables do not fill its content (a ledger written
#: by hand or by an older producer): it fails without a POST.
UNFILLED = "personal_text_unfilled"
# Stored messages kept per process, at most: this many, and this many bytes of images; and
# the bytes of request bodies kept.
_MESSAGES_KEPT = 256
_IMAGE_BYTES_KEPT = 64 * 1024 * 1024
_BODY_BYTES_KEPT = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Route:
    """How one delivery goes: the endpoint its attempt posts to (recorded with its claim),
    and, when it may not be posted at all, why (``refusal``: an error code and a reason)."""

    endpoint: Endpoint
    refusal: tuple[str, str] | None = None


@dataclass(frozen=True)
class _Unfit:
    """A delivery whose request cannot be built: recorded failed, no POST made."""

    code: str
    reason: str


class Deliverer:
    def __init__(
        self,
        handling: Handling,
        tokens: TokenProvider,
        graph: GraphClient,
        endpoints: EndpointChooser,
        policy: RetryPolicy,
    ) -> None:
        self._handling = handling
        self._tokens = tokens
        self._graph = graph
        self._endpoints = endpoints
        self._policy = policy
        self._rng = random.Random()  # noqa: S311 - jitter, not secrecy
        self._bodies: dict[tuple[str, str], _Body] = {}  # one per broadcast and endpoint
        self._body_bytes = 0  # of the bodies kept (one with images may be 4 MiB)
        self._messages: dict[str, StoredMessage] = {}  # by broadcast: stored once, read once
        self._image_bytes = 0  # of the messages kept
        self._settler = Settler(handling)
        self._troubles = TenantTroubles(handling)
        self.stopping = threading.Event()  # set on shutdown: no new claims

    def deliver_batch(self, messages: Sequence[DeliveryMessage]) -> list[Done]:
        """Deliver a batch; what became of each message (in no particular order)."""
        if self.stopping.is_set():
            return self._put_back(messages)
        # Tenants whose token is in hand go first: a tenant whose token needs a refresh (a
        # lock, a token call, perhaps a wait for another process's) must not hold them.
        in_hand = {t: self._tokens.at_hand(t) for t in {m.tenant for m in messages}}
        fast = [m for m in messages if in_hand[m.tenant]]
        slow = [m for m in messages if not in_hand[m.tenant]]
        return self._deliver_with_tokens(fast) + self._deliver_with_tokens(slow)

    def _deliver_with_tokens(self, messages: Sequence[DeliveryMessage]) -> list[Done]:
        done: list[Done] = []
        ready = self._with_tokens(messages, done)
        if ready and self._endpoints.needs_probe():
            # The endpoint is untried here: one post tests it first (at most one request
            # per process can meet an endpoint Graph removed), then the rest go together.
            # Only the post waits on the probe, never a token: one tenant's trouble must
            # not hold the others.
            # A message with parts goes by v1.0 whatever: it would prove nothing.
            with self._endpoints.probing:
                if self._endpoints.needs_probe():
                    probe = next((r for r in ready if not self._has_parts(r[0])), None)
                    if probe is not None:
                        done += self._deliver([probe])
                        ready = [r for r in ready if r is not probe]
        return done + self._deliver(ready)

    def _deliver(self, ready: list[_Ready]) -> list[Done]:
        done: list[Done] = []
        if not ready:
            return done
        current = self._endpoints.current()
        routes = [self._route(m, current) for m, _ in ready]
        claims = self._handling.claim(
            [(m.delivery_id, new_request_id()) for m, _ in ready], [r.endpoint.name for r in routes]
        )
        flights: list[_Flight] = []
        try:
            self._launch_all(ready, claims, routes, flights, done)
        finally:
            # Whatever happened, what is on the wire is waited for and recorded.
            posted = [self._land(flight) for flight in flights]
            self._settler.settle(posted)
        done += [Done(p.outcome.state) for p in posted]
        return done

    # -- 1. tokens -----------------------------------------------------------------------
    def _with_tokens(self, messages: Sequence[DeliveryMessage], done: list[Done]) -> list[_Ready]:
        """The messages whose tenant has a token, each with it; the others wait (for a
        sign-in, or out their tenant's trouble), each tenant asked once per batch."""
        answers: dict[str, str | Exception | float] = {}
        parked: dict[str, list[DeliveryMessage]] = {}  # by tenant
        ready: list[_Ready] = []
        for message in messages:
            if message.tenant not in answers:
                answers[message.tenant] = self._token(message.tenant)
            answer = answers[message.tenant]
            if isinstance(answer, str):
                ready.append((message, answer))
            elif isinstance(answer, Exception):
                done.append(self._wait_for_sign_in(message, answer))
            else:
                parked.setdefault(message.tenant, []).append(message)
        for tenant, group in parked.items():
            wait = answers[tenant]
            self._troubles.park(group, wait if isinstance(wait, float) else 0.0)
            done += [Done(None)] * len(group)
        return ready

    def _token(self, tenant: str) -> str | Exception | float:
        """The tenant's token; the error when a person must act (a sign-in, the right key);
        or how many seconds its deliveries wait out a passing trouble."""
        wait = self._troubles.waiting(tenant)
        if wait is not None:
            return wait
        try:
            token = self._tokens.token(tenant)
        except (SignInRequiredError, TokenCacheError) as exc:
            return exc
        except (BrokerError, IdentityError) as exc:
            return self._troubles.failed(tenant, str(exc))
        self._troubles.recovered(tenant)
        return token

    def _wait_for_sign_in(self, message: DeliveryMessage, exc: Exception) -> Done:
        """No attempt is used: the delivery waits until ``threadcast login`` re-queues it."""
        return Done(self._handling.wait_for_sign_in(message, exc).state)

    # -- 2-3. claims, permits, POSTs -------------------------------------------------------
    def _route(self, message: DeliveryMessage, current: Endpoint) -> _Route:
        """The endpoint the delivery's attempt posts to, decided before its claim so that the
        claim's attempt row records the endpoint actually used: the broadcast's stored message
        is known by then (read once per process), and a reroute (the beta segment gone) opens
        a new attempt row of its own. A message with parts beyond its body goes by v1.0
        channel messages whatever ``current`` is (the seed's chatthreads request carries a
        body only); any other by ``current``. Under a THREADCAST_ENDPOINT pinned to
        chatthreads, a message with parts is refused: its attempt names chatthreads, the
        endpoint that refused it, and records no HTTP status (no POST is made)."""
        stored = self._stored(message.broadcast_id)
        if stored is None or not stored.parts.beyond_body:
            return _Route(current)
        forced = self._endpoints.for_parts()
        if forced is not None:
            return _Route(forced)
        reason = (
            f"the message has parts beyond its body ({stored.parts.describe()}) and "
            f"THREADCAST_ENDPOINT pins {CHATTHREADS}, whose request carries a body only: set "
            f"THREADCAST_ENDPOINT=auto or {CHANNEL_MESSAGES}, then threadcast retry the "
            "broadcast's failed deliveries"
        )
        return _Route(current, (PARTS_NEED_V1, reason))

    def _launch_all(
        self,
        ready: list[_Ready],
        claims: list[Claim | Refusal],
        routes: list[_Route],
        flights: list[_Flight],
        done: list[Done],
    ) -> None:
        """Launch each claimed delivery; if anything raises, the claims not yet launched
        are given back before the error goes on (no request was made for them)."""
        for index, ((message, token), claim, route) in enumerate(
            zip(ready, claims, routes, strict=True)
        ):
            try:
                if isinstance(claim, Refusal):
                    done.append(self._refused(message, claim))
                    continue
                launched = self._launch(message, claim, token, route)
            except BaseException:
                self._handling.give_back_all(claims[index + 1 :])
                raise
            if isinstance(launched, Done):
                done.append(launched)
            else:
                flights.append(launched)

    def _launch(
        self, message: DeliveryMessage, claim: Claim, token: str, route: _Route
    ) -> _Flight | Done:
        """Take the claimed delivery (its body, then its permit: the lifecycle gives the
        claim back if anything fails before the POST), then the POST. A delivery that may
        not be posted (its route's refusal, a body that cannot be built) is recorded failed,
        its permit never started."""
        if route.refusal is not None:
            return Done(self._handling.refuse(message, claim, *route.refusal).state)
        endpoint = route.endpoint
        try:
            made = self._body(claim, endpoint)
        except BaseException:
            self._handling.give_back_all([claim])  # no request was made: it queues again
            raise
        if isinstance(made, _Unfit):  # before its permit is started: given back with it
            return Done(self._handling.refuse(message, claim, made.code, made.reason).state)
        taken = self._handling.take(message, claim, lambda: made)
        if isinstance(taken, Left):
            return Done(taken.state)
        body, send_at = taken
        post = Post(
            endpoint, token, claim.group, claim.channel, body, claim.client_request_id, claim.number
        )
        return _Flight(message, claim, post, send_at, self._graph.post(post))

    def _put_back(self, messages: Sequence[DeliveryMessage]) -> list[Done]:
        """The worker is stopping: nothing is claimed; the batch waits for another worker."""
        self._handling.put_back(messages)
        return [Done(None)] * len(messages)

    # -- 4. answers ------------------------------------------------------------------------
    def _land(self, flight: _Flight) -> Posted:
        """Wait for the answer and judge it (never raises: an answer must be recorded)."""
        claim, post = flight.claim, flight.post
        reply = reply_of(flight.reply)
        if segment_gone(reply.status, reply.error_message) and self._endpoints.may_switch(
            post.endpoint
        ):
            moved = self._reroute(claim, reply)
            if moved is None:
                return self._posted_again_soon(flight, reply)
            claim, endpoint = moved
            made = self._body(claim, endpoint)
            if isinstance(made, _Unfit):  # not after a first body was built: never here
                return self._posted_again_soon(flight, reply)
            body = made[0]
            post = Post(
                endpoint,
                post.token,
                claim.group,
                claim.channel,
                body,
                claim.client_request_id,
                claim.number,
            )
            reply = reply_of(self._graph.post(post))
        self._endpoints.answered(post.endpoint, reply)
        return self._judged(flight, claim, post.token, reply)

    def _judged(self, flight: _Flight, claim: Claim, token: str, reply: GraphReply) -> Posted:
        now = datetime.now(UTC)
        delay: float | None
        if reply.status == 401 and claim.previous_status != 401:
            # A token Graph refused is never used again; one retry with a fresh one, once every
            # process has had time to hear of the refusal.
            self._tokens.reject(claim.tenant, token)
            delay = REFUSAL_NOTICE_SECONDS
            outcome = _reply_outcome(reply, DeliveryState.RETRYING, now + timedelta(seconds=delay))
        else:
            budget_used = claim.number - claim.attempt_base
            outcome, delay = judge(reply, budget_used, self._policy, now, self._rng)
            if outcome.state is DeliveryState.WAITING_AUTH:
                # Graph refused for want of consent: every post of the tenant would be, so
                # the tenant waits for a sign-in, not just this delivery.
                self._tokens.withdraw(claim.tenant, token, outcome.error_message or "")
        return Posted(flight.message, claim, reply, outcome, delay, flight.send_at, now)

    def _reroute(self, claim: Claim, reply: GraphReply) -> tuple[Claim, Endpoint] | None:
        """Graph proved the beta endpoint gone (nothing was posted): the deployment switches
        and this delivery goes on to v1.0 at once, its next attempt free of its budget."""
        endpoint = self._endpoints.switch(reply)
        answered = _reply_outcome(reply, DeliveryState.RETRYING)
        log_reply(claim, reply, REROUTED)
        try:
            moved = self._handling.reroute(claim, answered, endpoint.name, new_request_id())
        except (SQLAlchemyError, ThreadcastError) as exc:
            log.warning(
                "delivery %s: cannot record its rerouted attempt: %s", claim.delivery_id, exc
            )
            return None
        return None if moved is None else (moved, endpoint)

    def _posted_again_soon(self, flight: _Flight, reply: GraphReply) -> Posted:
        """The answer proved nothing was posted, but the next attempt could not be opened
        under this claim: the delivery is retried shortly (on the new endpoint)."""
        now = datetime.now(UTC)
        outcome = _reply_outcome(reply, DeliveryState.RETRYING, now + timedelta(seconds=1))
        return Posted(flight.message, flight.claim, reply, outcome, 1.0, flight.send_at, now)

    # -- the rest --------------------------------------------------------------------------
    def _body(self, claim: Claim, endpoint: Endpoint) -> _Body | _Unfit:
        """The claim's request body on ``endpoint`` and its broadcast's send time.

        A plain broadcast's body is the same for all its deliveries on one endpoint: built
        once, kept (the fast path). A personal broadcast's content (and subject) is filled in
        with the claim's variables (templates compiled once per process); a message with
        parts becomes v1.0's whole chatMessage (a mention of the channel or team names the
        delivery's own). :class:`_Unfit` when it cannot be built: variables missing, or parts
        bound for an endpoint that carries a body only (never posted there). Only the ledger
        read may raise (the claim is then given back)."""
        stored = self._stored(claim.broadcast_id)
        if stored is None:
            raise LedgerError(f"no broadcast {claim.broadcast_id!r} for a claimed delivery")
        shared = not stored.personal and not _per_channel(stored.parts)
        key = (endpoint.name, claim.broadcast_id)
        if shared and key in self._bodies:
            return self._bodies[key]
        made = _request(stored, claim, endpoint)
        if shared and not isinstance(made, _Unfit):
            size = len(made[0])
            if len(self._bodies) > 256 or self._body_bytes + size > _BODY_BYTES_KEPT:
                self._bodies.clear()
                self._body_bytes = 0
            self._bodies[key] = made
            self._body_bytes += size
        return made

    def _stored(self, broadcast_id: str) -> StoredMessage | None:
        """The broadcast's stored message, read once per process (it never changes)."""
        found = self._messages.get(broadcast_id)
        if found is None:
            found = self._handling.message(broadcast_id)
            if found is None:
                return None  # not kept: the claim is refused (an unknown delivery)
            size = sum(len(image.data) for image in found.parts.images)
            if (
                len(self._messages) >= _MESSAGES_KEPT
                or self._image_bytes + size > _IMAGE_BYTES_KEPT
            ):
                self._messages.clear()
                self._image_bytes = 0
            self._messages[broadcast_id] = found
            self._image_bytes += size
        return found

    def _has_parts(self, message: DeliveryMessage) -> bool:
        stored = self._stored(message.broadcast_id)
        return stored is not None and stored.parts.beyond_body

    def reject(self, raw: object, reason: str) -> None:
        """Record a message that breaks the contract (it is acknowledged and dropped)."""
        self._handling.reject(raw, reason)

    def _refused(self, message: DeliveryMessage, refusal: Refusal) -> Done:
        return Done(self._handling.refused(message, refusal).state)


def _per_channel(parts: MessageParts) -> bool:
    """Whether the request differs per delivery: a mention of its own channel or team."""
    return any(m.kind is not MentionKind.USER for m in parts.mentions)


def _request(stored: StoredMessage, claim: Claim, endpoint: Endpoint) -> _Body | _Unfit:
    """One delivery's request body (see :meth:`Deliverer._body`)."""
    html = stored.content_type is ContentType.HTML
    content, parts = stored.content, stored.parts
    if stored.personal:
        variables = claim.variables or {}
        try:
            content = fill(compiled("content", content, html), variables, "content")
            if parts.subject is not None:
                subject = fill(compiled("subject", parts.subject, False), variables, "subject")
                parts = replace(parts, subject=subject)
        except ValidationError as exc:  # checked at send time: not from here
            return _Unfit(UNFILLED, f"its variables do not fill the broadcast's text: {exc}")
    if parts.beyond_body:
        if endpoint.name != CHANNEL_MESSAGES:
            return _Unfit(
                PARTS_NEED_V1,
                f"the message has parts beyond its body ({parts.describe()}); "
                f"{endpoint.name} carries a body only",
            )
        message = parts.chat_message(content, html, claim.group, claim.channel)
        return chat_message_body(message), stored.send_at
    return endpoint.body(content, stored.content_type), stored.send_at


def _reply_outcome(
    reply: GraphReply, state: DeliveryState, retry_at: datetime | None = None
) -> Outcome:
    return Outcome(
        state,
        http_status=reply.status,
        request_id=reply.request_id,
        error_code=reply.error_code,
        error_message=reply.error_message,
        latency_ms=reply.latency_ms,
        next_attempt_at=retry_at,
    )
