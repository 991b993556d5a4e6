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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from threadcast.contract import DeliveryMessage
from threadcast.endpoints import segment_gone
from threadcast.errors import (
    BrokerError,
    IdentityError,
    SignInRequiredError,
    ThreadcastError,
    TokenCacheError,
)
from threadcast.ids import new_request_id
from threadcast.ledger import Claim, DeliveryState, Outcome, Refusal
from threadcast.ledger.states import REROUTED
from threadcast.lifecycle import Handling, Left
from worker.endpoint import EndpointChooser
from worker.graph import Endpoint, GraphClient, GraphReply, Post
from worker.policy import RetryPolicy, judge
from worker.settle import Posted, Settler, log_reply
from worker.tenants import TenantTroubles
from worker.tokens import REFUSAL_NOTICE_SECONDS, TokenProvider

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
        self._bodies: dict[tuple[str, str], tuple[bytes, datetime | None]] = {}
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
            with self._endpoints.probing:
                if self._endpoints.needs_probe():
                    done += self._deliver(ready[:1])
                    ready = ready[1:]
        return done + self._deliver(ready)

    def _deliver(self, ready: list[_Ready]) -> list[Done]:
        done: list[Done] = []
        if not ready:
            return done
        endpoint = self._endpoints.current()
        claims = self._handling.claim(
            [(m.delivery_id, new_request_id()) for m, _ in ready], endpoint.name
        )
        flights: list[_Flight] = []
        try:
            self._launch_all(ready, claims, endpoint, flights, done)
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
    def _launch_all(
        self,
        ready: list[_Ready],
        claims: list[Claim | Refusal],
        endpoint: Endpoint,
        flights: list[_Flight],
        done: list[Done],
    ) -> None:
        """Launch each claimed delivery; if anything raises, the claims not yet launched
        are given back before the error goes on (no request was made for them)."""
        for index, ((message, token), claim) in enumerate(zip(ready, claims, strict=True)):
            try:
                if isinstance(claim, Refusal):
                    done.append(self._refused(message, claim))
                    continue
                launched = self._launch(message, claim, token, endpoint)
            except BaseException:
                self._handling.give_back_all(claims[index + 1 :])
                raise
            if isinstance(launched, Done):
                done.append(launched)
            else:
                flights.append(launched)

    def _launch(
        self, message: DeliveryMessage, claim: Claim, token: str, endpoint: Endpoint
    ) -> _Flight | Done:
        """Take the claimed delivery (its body, then its permit: the lifecycle gives the
        claim back if anything fails before the POST), then the POST."""
        taken = self._handling.take(
            message, claim, lambda: self._body(claim.broadcast_id, endpoint)
        )
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
        reply = _result(flight.reply)
        if segment_gone(reply.status, reply.error_message) and self._endpoints.may_switch(
            post.endpoint
        ):
            moved = self._reroute(claim, reply)
            if moved is None:
                return self._posted_again_soon(flight, reply)
            claim, endpoint = moved
            body = self._body(claim.broadcast_id, endpoint)[0]
            post = Post(
                endpoint,
                post.token,
                claim.group,
                claim.channel,
                body,
                claim.client_request_id,
                claim.number,
            )
            reply = _result(self._graph.post(post))
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
    def _body(self, broadcast_id: str, endpoint: Endpoint) -> tuple[bytes, datetime | None]:
        """The request body (the same for every delivery of a broadcast on one endpoint) and
        the broadcast's send time."""
        key = (endpoint.name, broadcast_id)
        found = self._bodies.get(key)
        if found is None:
            content, content_type, send_at = self._handling.content(broadcast_id)
            found = (endpoint.body(content, content_type), send_at)
            if len(self._bodies) > 256:
                self._bodies.clear()
            self._bodies[key] = found
        return found

    def reject(self, raw: object, reason: str) -> None:
        """Record a message that breaks the contract (it is acknowledged and dropped)."""
        self._handling.reject(raw, reason)

    def _refused(self, message: DeliveryMessage, refusal: Refusal) -> Done:
        return Done(self._handling.refused(message, refusal).state)


def _result(reply: Future[GraphReply]) -> GraphReply:
    try:
        return reply.result()
    except Exception as exc:  # the loop died under it: the request may have gone out
        return GraphReply(
            None,
            0.0,
            error_code=f"client:{type(exc).__name__}",
            error_message=str(exc)[:500],
            maybe_sent=True,
        )


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
