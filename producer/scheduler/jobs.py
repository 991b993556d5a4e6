"""The scheduler's jobs, and how to add one.

:func:`default_jobs` builds the list the ``threadcast scheduler`` process runs while it is the
leader. To add a job (an orphan-delivery sweep, a lease-expiry sweep, …):

1. write a class or function in its own module under ``producer/scheduler/`` (or, when it
   moves deliveries in both the ledger and the gate, in ``threadcast/lifecycle/``) with a
   ``run(now: datetime) -> None`` that does a bounded amount of work and is idempotent (it
   may run twice around a change of leader, or again after a crash halfway);
2. take what it needs from :class:`SchedulerContext` (ledger, publisher, producer, settings;
   add a field there if it needs something new, opened in :meth:`SchedulerContext.open`);
3. append ``Job("its-name", interval_seconds, it.run)`` to the list below.

The loop (:mod:`producer.scheduler.loop`) runs jobs in list order, each at most every
``interval`` seconds, and all of them at once when the process becomes leader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import redis

from producer.client import Producer
from producer.scheduler.events import FIND_INTERVAL_SECONDS, FindEvents
from producer.scheduler.loop import TICK_SECONDS, Job
from producer.scheduler.oneoff import ExpireMissed, LaunchDue
from producer.scheduler.recurring import LaunchOccurrences
from producer.scheduler.webhooks import SEND_INTERVAL_SECONDS, SendWebhooks
from threadcast.ledger import Ledger
from threadcast.lifecycle import Publisher, gates
from threadcast.lifecycle.sweeps import ChangeSweep, LeaseSweep, OrphanSweep
from threadcast.settings import Settings

#: How often broadcasts due longer ago than the grace are looked for (a slower, wider scan).
EXPIRE_INTERVAL_SECONDS = 30.0
#: How often deliveries whose worker died mid-attempt are settled (unknown, or re-queued).
LEASE_SWEEP_SECONDS = 5.0
#: How often the ledger's waiting deliveries are checked against Redis (lost ones re-queued).
ORPHAN_SWEEP_SECONDS = 15.0
#: How often edits and recalls that no worker runs are announced to the gate again.
CHANGE_SWEEP_SECONDS = 15.0


@dataclass
class SchedulerContext:
    """What the jobs share: opened once per scheduler process."""

    settings: Settings
    producer: Producer
    publisher: Publisher
    redis: redis.Redis

    @property
    def ledger(self) -> Ledger:
        return self.producer.ledger

    @classmethod
    def open(cls, settings: Settings) -> SchedulerContext:
        return cls(
            settings,
            Producer(settings),
            Publisher(settings.redis_url),
            redis.Redis.from_url(settings.redis_url),
        )

    def close(self) -> None:
        self.publisher.close()
        self.producer.close()
        self.redis.close()

    def __enter__(self) -> SchedulerContext:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _always() -> bool:
    return True


def default_jobs(ctx: SchedulerContext, keep_lease: Callable[[], bool] = _always) -> list[Job]:
    """The jobs every scheduler runs while leader, in order. ``keep_lease`` renews the leader
    lease and says whether it is still held: long jobs call it between chunks of work."""
    grace = ctx.settings.schedule_grace
    launch = LaunchDue(ctx.ledger, ctx.publisher, grace)
    occurrences = LaunchOccurrences(ctx.ledger, ctx.producer)
    expire = ExpireMissed(ctx.ledger, grace)
    gate = gates.entrance(ctx.redis)
    leases = LeaseSweep(ctx.ledger, gate, retry_ambiguous=ctx.settings.ambiguous == "retry")
    orphans = OrphanSweep(
        ctx.ledger,
        gate,
        grace=ctx.settings.orphan_grace,
        released_grace=ctx.settings.orphan_released_grace,
        keep_lease=keep_lease,
    )
    changes = ChangeSweep(ctx.ledger, gates.changes(ctx.redis, ctx.settings))
    hooks = ctx.settings.webhook_endpoints  # signed events (docs/WEBHOOKS.md); none: idle
    events, sender = FindEvents(ctx.ledger, hooks), SendWebhooks(ctx.ledger, hooks)
    return [
        Job("launch-due-broadcasts", TICK_SECONDS, launch.run),
        Job("launch-occurrences", TICK_SECONDS, occurrences.run),
        Job("expire-missed-broadcasts", EXPIRE_INTERVAL_SECONDS, expire.run),
        Job("settle-expired-leases", LEASE_SWEEP_SECONDS, leases.run),
        Job("requeue-orphans", ORPHAN_SWEEP_SECONDS, orphans.run),
        Job("resume-changes", CHANGE_SWEEP_SECONDS, changes.run),
        Job("find-webhook-events", FIND_INTERVAL_SECONDS, events.run),
        Job("send-webhooks", SEND_INTERVAL_SECONDS, sender.run),  # its own threads: never waits
    ]
