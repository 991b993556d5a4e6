"""Which Graph endpoint this worker process posts to, and the switch when Graph proves the
seed's beta endpoint gone (the rules: :mod:`threadcast.endpoints`)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from threadcast import metrics
from threadcast.endpoints import (
    AUTO,
    CHANNEL_MESSAGES,
    CHATTHREADS,
    EndpointRecord,
    Switch,
    active,
    segment_gone,
)
from threadcast.errors import ThreadcastError
from worker.graph import ENDPOINTS, Endpoint, GraphReply

log = logging.getLogger("threadcast.worker")

# How often a process still on chatthreads asks Redis whether another process switched:
# until it hears, it may spend one request on the dead endpoint, which posts nothing.
_LOOK_EVERY = 1.0


class EndpointChooser:
    def __init__(
        self,
        setting: str,
        record: EndpointRecord,
        worker: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._setting = setting
        self._record = record
        self._worker = worker
        self._clock = clock
        self._switch: Switch | None = None
        self._looked = -math.inf
        self._read_ledger = True  # the first look also asks the ledger (Redis may be new)
        # Until chatthreads answered a post here, one post at a time tries it: with many
        # posts in flight, a dead endpoint would otherwise meet a whole burst of them.
        self._proven = False
        self.probing = threading.Lock()
        self._looking = threading.Lock()

    def current(self) -> Endpoint:
        if self._setting == AUTO and self._switch is None:
            # One thread looks at a time, and the others wait for its answer: a thread that
            # went on meanwhile would post to chatthreads on a stale "not switched".
            with self._looking:
                if self._switch is None and self._clock() - self._looked >= _LOOK_EVERY:
                    self._switch = self._look()
                    self._looked = self._clock()
        return ENDPOINTS[active(self._setting, self._switch)]

    def needs_probe(self) -> bool:
        """Whether the next post tests an endpoint this process has not seen work yet."""
        return self.current().name == CHATTHREADS and self._setting == AUTO and not self._proven

    def answered(self, endpoint: Endpoint, reply: GraphReply) -> None:
        """Any HTTP answer but the removed segment's proves the endpoint exists (Graph
        resolves the path before it looks at the token or the body)."""
        gone = segment_gone(reply.status, reply.error_message)
        if endpoint.name == CHATTHREADS and reply.status is not None and not gone:
            self._proven = True

    def for_parts(self) -> Endpoint | None:
        """The endpoint a message with parts beyond its body goes by, whatever the
        deployment's endpoint now: v1.0 channel messages, the only one that carries them --
        also under ``auto`` before any switch (nothing is learnt about chatthreads then).
        None when THREADCAST_ENDPOINT pins chatthreads: such a message may not be posted at
        all (the producer refuses it at send time; a ledger written before the pin changed
        may still hold one)."""
        if self._setting == CHATTHREADS:
            return None
        return ENDPOINTS[CHANNEL_MESSAGES]

    def may_switch(self, endpoint: Endpoint) -> bool:
        return self._setting == AUTO and endpoint.name == CHATTHREADS

    def switch(self, reply: GraphReply) -> Endpoint:
        """Graph proved chatthreads gone: the deployment moves to v1.0, recorded once."""
        proposal = Switch(
            CHANNEL_MESSAGES,
            datetime.now(UTC).isoformat(),
            f"{reply.status} {reply.error_code}: {reply.error_message}"[:300],
            self._worker,
        )
        try:
            self._switch, made = self._record.record(proposal, datetime.now(UTC))
        except (SQLAlchemyError, ThreadcastError) as exc:
            # This process moves on anyway; the next answer like it records the switch.
            log.warning("cannot record the switch to %s: %s", CHANNEL_MESSAGES, exc)
            self._switch, made = proposal, False
        if made:
            log.warning(
                "Graph answered that the beta chatthreads endpoint is gone (request-id %s): "
                "this deployment now posts to v1.0 channel messages",
                reply.request_id,
            )
            metrics.record_endpoint_switch(CHANNEL_MESSAGES)
        return ENDPOINTS[CHANNEL_MESSAGES]

    def _look(self) -> Switch | None:
        if not self._read_ledger:
            return self._record.read_fast()
        try:
            found = self._record.read()
        except SQLAlchemyError as exc:
            log.warning("cannot read the endpoint switch from the ledger: %s", exc)
            return None
        self._read_ledger = False
        return found
