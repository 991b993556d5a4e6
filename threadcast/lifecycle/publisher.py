"""Publishing: putting deliveries into the gate on Redis, where they wait for their turn.

"Publish" means this one thing in threadcast: a delivery recorded ``queued`` (or ``retrying``)
in the ledger enters the gate. The producer never talks to Celery or imports the worker; the
workers' dispatcher releases deliveries from the gate as Celery messages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import redis

from threadcast.contract import DeliveryMessage
from threadcast.dispatch import Entrance
from threadcast.errors import BrokerError
from threadcast.lifecycle import gates

_AHEAD = 10_000  # messages read ahead at a time (the gate's own chunk)
_AHEAD_CHUNKS = 2  # … and how many such chunks may wait


class Publisher:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._gate = gates.entrance(self._redis)

    @property
    def gate(self) -> Entrance:
        """The gate's entrance it publishes to (for the lifecycle's producer-side steps)."""
        return self._gate

    def publish(self, messages: Iterable[DeliveryMessage], *, replace: bool = False) -> int:
        """Enqueue every message the gate does not hold yet; return how many. Raises
        BrokerError if Redis is gone. ``replace``: the deliveries were settled (an operator
        retry, a sign-in that resumes them), so whatever the gate still says of them is stale
        and is replaced.

        Messages that are not a list yet (a broadcast's, read back from the ledger) are read
        on a thread of their own, a chunk ahead: the ledger's reads and the gate's waits
        on Redis overlap (1,000,000 messages: about 1.5 s less)."""
        try:
            if isinstance(messages, Sequence):
                return self._gate.enqueue(messages, replace=replace)
            ahead = _ReadAhead(messages)
            try:
                return self._gate.enqueue(ahead, replace=replace)
            finally:
                ahead.close()
        except BrokerError as exc:
            raise BrokerError(
                f"{exc}. The deliveries are safe in the ledger: send the same broadcast id "
                "again, or let `threadcast scheduler` re-queue them"
            ) from exc

    def close(self) -> None:
        self._redis.close()


class _ReadAhead:
    """``messages`` read on a thread of their own, up to _AHEAD_CHUNKS chunks ahead of the
    caller; whatever reading them raises is raised to the caller, in order."""

    def __init__(self, messages: Iterable[DeliveryMessage]) -> None:
        self._chunks: queue.Queue[_Chunk] = queue.Queue(_AHEAD_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(iter(messages),), name="threadcast-read-ahead", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Iterator[DeliveryMessage]:
        while (chunk := self._chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield from chunk

    def close(self) -> None:
        """Stop reading (the caller may have given up half-way) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def _read(self, messages: Iterator[DeliveryMessage]) -> None:
        try:
            while chunk := list(islice(messages, _AHEAD)):
                if not self._put(chunk):
                    return
            self._put(None)
        except BaseException as exc:  # the caller's thread raises it
            self._put(exc)

    def _put(self, chunk: _Chunk) -> bool:
        while not self._stop.is_set():
            try:
                self._chunks.put(chunk, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


_Chunk = list[DeliveryMessage] | BaseException | None  # None: no more
