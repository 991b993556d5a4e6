"""The Celery application: configuration, the delivery task, and the dispatcher thread."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

import redis
from celery import Celery, Task, signals

from threadcast import heartbeat, metrics
from threadcast.constants import CHANGE_TASK, QUEUE, SEND_TASK, VISIBILITY_TIMEOUT_SECONDS
from threadcast.contract import DeliveryMessage, batch_from_wire, batch_to_wire
from threadcast.dispatch import keys
from threadcast.heartbeat import Heartbeat
from threadcast.lease import LeaderLease
from threadcast.ledger import Ledger
from threadcast.lifecycle import gates
from threadcast.lifecycle.handling import note_over_quota
from threadcast.logs import configure_logging
from threadcast.settings import Settings
from worker.context import WorkerContext
from worker.dispatcher import Dispatcher

log = logging.getLogger("threadcast.worker")

#: /healthz fails when this process's dispatcher loop has not gone round for this long (it
#: goes round at least every couple of seconds, leader or not).
_LOOP_STALE_SECONDS = 60.0


def create_app(settings: Settings) -> Celery:
    """The worker's app; refuses to start without what every delivery needs."""
    settings.require("client_id", "token_cache_key")
    _check_key(settings)
    app = Celery("threadcast", set_as_current=False)
    app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=QUEUE,
        # Threads, not processes: a thread waits on its batch's posts in flight (on the
        # process's asyncio loop) at almost no cost, where a process would cost ~100 MB
        # per batch (docs/PERFORMANCE.md). `-P prefork` still works, each child a loop.
        worker_pool="threads",
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_threads,
        # Task events feed Flower (THREADCAST_TASK_EVENTS); off by default, they cost a
        # broker message per task state change.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
    )
    contexts = _register(app, settings)
    watch = _DispatcherWatch(settings, contexts)
    _run_dispatcher(app, settings, watch)
    _observe(settings, watch)
    return app


def _observe(settings: Settings, watch: _DispatcherWatch) -> None:
    """Our log format (text or JSON, redacted) instead of Celery's; metrics and health on a
    port."""
    signals.setup_logging.connect(lambda **_: configure_logging(settings), weak=False)

    def serve(**_: Any) -> None:
        # In the parent, before the pool forks: children write to the multiprocess directory.
        metrics.serve(settings, metrics.HeartbeatCollector(watch.redis), health=watch.health)

    signals.worker_init.connect(serve, weak=False)
    signals.worker_process_shutdown.connect(
        lambda pid=None, **_: metrics.process_exited(pid or os.getpid()), weak=False
    )


def _check_key(settings: Settings) -> None:
    # A wrong key must stop the worker at start, not park every delivery as waiting_auth.
    context = WorkerContext.build(settings)
    try:
        context.store.verify_key()
    finally:
        context.close()


class _Contexts:
    """One WorkerContext per process, shared by its threads, built on first use: a forked
    child must not reuse its parent's sockets."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[int, WorkerContext] = {}
        self._building = threading.Lock()

    def get(self) -> WorkerContext:
        pid = os.getpid()
        found = self._built.get(pid)
        if found is None:
            with self._building:
                if pid not in self._built:
                    self._built.clear()
                    self._built[pid] = WorkerContext.build(self._settings)
                found = self._built[pid]
        return found

    def built(self) -> WorkerContext | None:
        """This process's context, if a delivery built it yet."""
        return self._built.get(os.getpid())

    def stopping(self, **_: Any) -> None:
        # Warm shutdown: batches already taken finish and are recorded; a batch taken
        # after this claims nothing and goes back to the gate for another worker.
        for built in list(self._built.values()):
            built.deliverer.stopping.set()


def _register(app: Celery, settings: Settings) -> _Contexts:
    contexts = _Contexts(settings)
    signals.worker_shutting_down.connect(contexts.stopping, weak=False)

    @app.task(  # type: ignore[untyped-decorator]
        name=SEND_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(Exception,),
        retry_backoff=2,
        retry_backoff_max=60,
        max_retries=10,
    )
    def send_delivery(self: Task, message: Any) -> None:
        """``message``: one delivery (a version-1 object) or a batch (a list of them)."""
        context = contexts.get()
        parsed, bad = batch_from_wire(message)
        for raw, reason in bad:
            # Recorded, acknowledged and dropped: a malformed message must never crash-loop.
            context.deliverer.reject(raw, reason)
        if parsed:
            # Within this process's in-flight bound (Little's law, worker/flight.py): a
            # thread over it waits here, before claiming anything.
            with context.flight.slots(len(parsed)):
                context.deliverer.deliver_batch(parsed)

    @app.task(  # type: ignore[untyped-decorator]
        name=CHANGE_TASK,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(Exception,),
        retry_backoff=2,
        retry_backoff_max=60,
        max_retries=10,
    )
    def run_change(change_id: Any) -> None:
        """An edit or a recall (worker/changes.py), run as far as it goes now."""
        if not isinstance(change_id, str) or not change_id:
            log.error("a change task without a change id was dropped: %r", change_id)
            return
        contexts.get().changes.run(change_id)

    return contexts


class _DispatcherWatch:
    """This process's dispatcher thread and what ``/healthz`` says of it.

    Healthy: the thread is alive and its loop went round within ``_LOOP_STALE_SECONDS``
    (whether or not this process holds the lease). The cluster's heartbeat (whoever leads)
    is shown beside it but does not fail this process: a Redis outage must not make an
    orchestrator restart every worker at once."""

    def __init__(self, settings: Settings, contexts: _Contexts) -> None:
        self._contexts = contexts
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self.dispatcher: Dispatcher | None = None
        self.thread: threading.Thread | None = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        dispatcher, thread = self.dispatcher, self.thread
        if dispatcher is None or thread is None:
            return True, {"dispatcher": "starting"}  # the worker is not ready yet
        since = time.monotonic() - dispatcher.turned_at
        ok = thread.is_alive() and since < _LOOP_STALE_SECONDS
        local = {
            "alive": thread.is_alive(),
            "last_turn_seconds_ago": round(since, 3),
            "leader": dispatcher.leading,
            "restarts": dispatcher.restarts,
            "error": dispatcher.error,
        }
        body = {"dispatcher": local, "heartbeat": self._heartbeat()}
        built = self._contexts.built()
        if built is not None:  # after the first delivery
            flight = built.flight
            body["in_flight"] = {
                "now": flight.in_flight,
                "limit": flight.limit,
                "peak": flight.peak,
                "cap": flight.cap,
            }
        return ok, body

    def _heartbeat(self) -> dict[str, Any] | str:
        try:
            reading = heartbeat.read(self.redis)
        except redis.RedisError as exc:
            return f"Redis unreachable: {type(exc).__name__}"
        if reading is None:
            return "none: no dispatcher turned within its TTL"
        beat = reading.beat
        return {
            "holder": beat.holder,
            "age_seconds": round(reading.age, 3),
            "stale": reading.stale,
            "released": beat.released,
            "error": beat.error,
        }


def _run_dispatcher(app: Celery, settings: Settings, watch: _DispatcherWatch) -> None:
    """Start the dispatcher thread when the worker is ready; stop it on shutdown."""
    stop = threading.Event()

    def start(**_: Any) -> None:
        client = redis.Redis.from_url(settings.redis_url)
        gate = gates.keeper(client, settings)
        gate.write_limits()

        def note_held(held: list[DeliveryMessage], until: datetime) -> None:
            # Opened per call (quota holds are rare): this process forks pool children, and
            # a SQLite connection must never be inherited across a fork.
            ledger = Ledger.open(settings.database_url, migrate=False)
            try:
                note_over_quota(ledger, held, until)
            finally:
                ledger.close()

        lease = LeaderLease(client, keys.LEADER, ttl=5.0)
        change_gate = gates.changes(client, settings)

        def launch_changes() -> int:
            found = change_gate.due()
            for change_id in found:
                app.send_task(CHANGE_TASK, args=[change_id], queue=QUEUE)
            return len(found)

        dispatcher = Dispatcher(
            gate,
            lease,
            _publisher(app),
            note_held,
            settings.dispatch_room,
            settings.batch_size,
            heartbeat=Heartbeat(client),
            launch_changes=launch_changes,
        )
        thread = threading.Thread(target=dispatcher.supervise, args=(stop,), name="dispatcher")
        thread.daemon = True
        watch.dispatcher, watch.thread = dispatcher, thread
        thread.start()

    def announce(**_: Any) -> None:
        if settings.worker_ready_file is not None:
            settings.worker_ready_file.write_text(str(os.getpid()))

    signals.worker_ready.connect(start, weak=False)
    signals.worker_ready.connect(announce, weak=False)
    signals.worker_shutting_down.connect(lambda **_: stop.set(), weak=False)


def _publisher(app: Celery) -> Any:
    def publish(batches: list[list[DeliveryMessage]]) -> None:
        with app.producer_or_acquire() as producer, producer.batch(max_size=len(batches)):
            for batch in batches:
                app.send_task(
                    SEND_TASK,
                    args=[batch_to_wire(batch)],
                    queue=QUEUE,
                    producer=producer,
                    # Shown by Flower and `celery inspect`; skips Celery's costly saferepr.
                    argsrepr=",".join(m.delivery_id for m in batch),
                    kwargsrepr="",
                )

    return publish
