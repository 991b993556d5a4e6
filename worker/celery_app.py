"""The Celery application: configuration and the delivery task."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task

from threadcast.constants import QUEUE, SEND_TASK, VISIBILITY_TIMEOUT_SECONDS
from threadcast.contract import ContractError, DeliveryMessage
from threadcast.settings import Settings
from worker.context import WorkerContext

log = logging.getLogger("threadcast.worker")


def create_app(settings: Settings) -> Celery:
    """The worker's app; refuses to start without what every delivery needs."""
    settings.require("client_id", "token_cache_key")
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
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
    )
    _check_key(settings)
    _register(app, settings)
    return app


def _check_key(settings: Settings) -> None:
    # A wrong key must stop the worker at start, not park every delivery as waiting_auth.
    context = WorkerContext.build(settings)
    try:
        context.store.verify_key()
    finally:
        context.close()


def _register(app: Celery, settings: Settings) -> None:
    contexts: dict[int, WorkerContext] = {}

    def context() -> WorkerContext:
        # One per process: a forked child must not reuse its parent's sockets.
        pid = os.getpid()
        if pid not in contexts:
            contexts.clear()
            contexts[pid] = WorkerContext.build(settings)
        return contexts[pid]

    @app.task(  # type: ignore[untyped-decorator]
        name=SEND_TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
        autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=60, max_retries=10,
    )  # fmt: skip
    def send_delivery(self: Task, message: Any) -> None:
        try:
            parsed = DeliveryMessage.from_wire(message)
        except ContractError as exc:
            # Recorded, acknowledged and dropped: a malformed message must never crash-loop.
            context().deliverer.reject(message, str(exc))
            return
        done = context().deliverer.deliver(parsed)
        if done.retry_in is not None:
            self.apply_async(args=[message], countdown=done.retry_in)
