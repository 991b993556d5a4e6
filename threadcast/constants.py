"""Names and defaults shared by producer and worker: one place to look them up."""

from __future__ import annotations

from typing import Final

#: Every Redis key threadcast writes starts with this (plus an optional per-deployment prefix).
KEY_PREFIX: Final = "threadcast:"
TOKEN_CACHE_KEY: Final = KEY_PREFIX + "tokencache:"  # + tenant -> encrypted MSAL cache
TOKEN_LOCK_KEY: Final = KEY_PREFIX + "tokenlock:"  # + tenant -> refresh lock
SIGN_IN_MARK_KEY: Final = KEY_PREFIX + "needs-signin:"  # + tenant -> the cache state that died
REFUSED_TOKEN_KEY: Final = KEY_PREFIX + "refused-token:"  # + tenant:sha256 -> Graph said 401

#: Celery names: the queue and the task are part of the producer/worker contract.
QUEUE: Final = "threadcast.deliveries"
SEND_TASK: Final = "threadcast.send_delivery"
#: Runs an edit or a recall (its one argument: the change id); threadcast/dispatch/changes.py.
CHANGE_TASK: Final = "threadcast.run_change"
MESSAGE_VERSION: Final = 1
#: The gate entry's version (contract.DeliveryMessage.entry): the producer writes it, the
#: dispatcher reads it, maybe after an upgrade. Entries written before it was versioned
#: carry none and read as version 1.
ENTRY_VERSION: Final = 1
# The most deliveries one Celery message may carry (a list of version-1 messages).
MAX_BATCH: Final = 100

#: The deployment's switch from the beta chatthreads endpoint to v1.0 (threadcast.endpoints).
ENDPOINT_KEY: Final = KEY_PREFIX + "endpoint"

#: The documented maximum size of a Teams message body.
MAX_CONTENT_BYTES: Final = 28 * 1024

#: A claimed delivery's lease: long enough for one HTTP attempt plus the ledger write.
LEASE_MARGIN_SECONDS: Final = 30.0

#: The Redis transport redelivers an unacknowledged message after this long. No Celery
#: countdown threadcast uses comes near it: delays wait in the gate, never in Celery ETAs
#: (docs/RATE_LIMITS.md, "Park"), since a longer ETA would be delivered twice.
VISIBILITY_TIMEOUT_SECONDS: Final = 3600

#: Scheduling (producer/scheduler): the leader lease's Redis key, holding the leader's id.
SCHEDULER_LEASE_KEY: Final = KEY_PREFIX + "scheduler:leader"
#: The dispatcher's heartbeat: JSON of its holder, work done and last error, written with this
#: TTL on every turn of the process that holds the dispatcher's lease. Its remaining TTL says
#: how long ago the last turn was, on Redis's clock (no host clock is compared).
DISPATCHER_HEARTBEAT_KEY: Final = KEY_PREFIX + "dispatcher:heartbeat"
DISPATCHER_HEARTBEAT_TTL_SECONDS: Final = 30.0
#: A send time this far in the past is still "now" (clocks differ, commands take time).
SEND_AT_TOLERANCE_SECONDS: Final = 5.0
#: A broadcast or occurrence released later than this after its time is marked ``late``.
LATE_AFTER_SECONDS: Final = 5.0
