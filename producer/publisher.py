"""Publishing delivery messages to the Celery queue on Redis.

The producer builds its own minimal Celery app (it never imports the worker): only the
task's name, queue and JSON body are shared, all three defined in threadcast.contract and
threadcast.constants.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import kombu.exceptions
import redis
from celery import Celery

from threadcast.constants import PUBLISH_BATCH, QUEUE, SEND_TASK, VISIBILITY_TIMEOUT_SECONDS
from threadcast.contract import DeliveryMessage
from threadcast.errors import BrokerError


class Publisher:
    def __init__(self, redis_url: str) -> None:
        self._app = Celery("threadcast-producer", set_as_current=False)
        self._app.conf.update(
            broker_url=redis_url,
            broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry=False,
            broker_connection_max_retries=0,
        )

    def publish(self, messages: Iterable[DeliveryMessage]) -> int:
        """Publish every message; return how many. Raises BrokerError if Redis is gone."""
        count = 0
        iterator = iter(messages)
        try:
            with self._app.producer_or_acquire() as producer:
                while batch := list(islice(iterator, PUBLISH_BATCH)):
                    # One Redis pipeline round trip per batch (kombu's publish batching).
                    with producer.batch(max_size=PUBLISH_BATCH):
                        for message in batch:
                            self._app.send_task(
                                SEND_TASK, args=[message.to_wire()], queue=QUEUE,
                                producer=producer,
                                # Shown by Flower/inspect; skips Celery's costly saferepr.
                                argsrepr=message.delivery_id, kwargsrepr="",
                            )  # fmt: skip
                    count += len(batch)
        except (kombu.exceptions.OperationalError, redis.RedisError, OSError) as exc:
            raise BrokerError(
                f"Redis stopped accepting messages after {count} were published "
                f"({type(exc).__name__}); the deliveries are safe in the ledger: send the same "
                "broadcast id again to publish the rest"
            ) from exc
        return count

    def close(self) -> None:
        self._app.close()
