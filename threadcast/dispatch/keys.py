"""Redis key names of the gate: the one place they are built.

Every key carries the hash tag ``{dispatch}`` so that, on a Redis Cluster, all of them live
in one slot. A script gets every key its caller can name in ``KEYS``. Two kinds of key only
a script can name: the per-tenant, per-team and per-channel keys of the deliveries
release.lua and promote.lua pop (which tenant, team and channel they serve is decided inside
the script), and the day's quota hash (named from Redis's clock). Those scripts get the
patterns below in ``ARGV`` (:func:`patterns`) and fill them with ``string.format``; no script
spells a key name itself.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from threadcast.constants import KEY_PREFIX

PREFIX = KEY_PREFIX + "{dispatch}:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TENANTS = PREFIX + "tenants"  # zset tenant -> when it may next send
# zset entry -> due time (retries, Retry-After, quota holds, deliveries whose channel was full)
DELAYED = PREFIX + "delayed"
APP_LOG = PREFIX + "log:app"  # zset permit -> send time, the app-wide sliding log
# hash tenant -> JSON [tenant_rps, team_rps, channel_daily, channel_rps] (limits.TenantRates)
LIMITS = PREFIX + "limits"
# hash delivery -> "p" (in its team queue) | "d<due>" (in the delayed zset at that score)
# | "r<time>" (released to Celery with the permit "<delivery>@<time>")
KNOWN = PREFIX + "known"
# zset broadcast -> when its cancellation mark lapses (a few days; the zset expires as well)
CANCELLED = PREFIX + "cancelled"
# zset delivery -> when its POST started (start.lua), kept 300 s: an idempotent
# re-send that read it as queued just before must not put it in again (enqueue.lua).
STARTED = PREFIX + "started"
WAKE = PREFIX + "wake"  # list: a push wakes the dispatcher
LEADER = PREFIX + "leader"  # the dispatcher's lease
# Edits and recalls (threadcast/dispatch/changes.py): zset change id -> when a worker should
# run it (again); the leading dispatcher hands the due ones to the workers as Celery tasks.
CHANGES = PREFIX + "changes"
EDIT_APP_LOG = PREFIX + "log:edit:app"  # zset permit -> request time: edits across tenants

# The patterns of the per-scope keys (``%s``: tenant, team, channel, in this order).
TEAMS = PREFIX + "teams:%s"  # zset team -> when it may next send
QUEUE = PREFIX + "q:%s:%s"  # list of gate entries, in order
TENANT_LOG = PREFIX + "log:t:%s"
TEAM_LOG = PREFIX + "log:g:%s:%s"
CHANNEL_LOG = PREFIX + "log:c:%s:%s:%s"
EDIT_TENANT_LOG = PREFIX + "log:edit:t:%s"  # a tenant's edits (PATCH and softDelete)
# The day's quota hash (``%s``: the UTC date as YYYYMMDD). Field ``<tenant>:<team>:<channel>``:
# the posts started that day; ``r|<tenant>:<team>:<channel>``: permits released that day and
# not yet started. It expires two days after its last write.
DAY = PREFIX + "day:%s"
# A scope's Retry-After cooldown (``%s``: the scope, as :func:`tenant_scope` etc., or
# ``app``): a string holding when it ends, which expires then.
COOL = PREFIX + "cool:%s"
APP_COOL = COOL % "app"
TENANT_COOL = COOL % "t:%s"
TEAM_COOL = COOL % "g:%s:%s"
CHANNEL_COOL = COOL % "c:%s:%s:%s"
# Audience reads (producer/audiences.py): a log per kind of read (``joined_teams``,
# ``channels``) and scope (``app`` or the tenant), and its cooldown.
READ_LOG = PREFIX + "log:read:%s:%s"
READ_COOL = COOL % "read:%s:%s"
EDIT_APP_COOL = COOL % "edit:app"
EDIT_TENANT_COOL = COOL % "edit:t:%s"


def patterns() -> list[str]:
    """The patterns release.lua and promote.lua read from ``ARGV`` (after their own
    arguments), in this order."""
    return [
        TEAMS,
        QUEUE,
        TENANT_LOG,
        TEAM_LOG,
        CHANNEL_LOG,
        TENANT_COOL,
        TEAM_COOL,
        CHANNEL_COOL,
        DAY,
    ]


def teams(tenant: str) -> str:
    return TEAMS % tenant


def queue(tenant: str, team: str) -> str:
    return QUEUE % (tenant, team)


def tenant_log(tenant: str) -> str:
    return TENANT_LOG % tenant


def team_log(tenant: str, team: str) -> str:
    return TEAM_LOG % (tenant, team)


def channel_log(tenant: str, team: str, channel: str) -> str:
    return CHANNEL_LOG % (tenant, team, channel)


def edit_tenant_log(tenant: str) -> str:
    return EDIT_TENANT_LOG % tenant


def edit_tenant_cool(tenant: str) -> str:
    return EDIT_TENANT_COOL % tenant


def read_log(kind: str, scope: str) -> str:
    return READ_LOG % (kind, scope)


def read_cool(kind: str, scope: str) -> str:
    return READ_COOL % (kind, scope)


def channel_day(day: datetime) -> str:
    """The quota hash of ``day`` (a UTC date)."""
    return DAY % f"{day:%Y%m%d}"


@functools.lru_cache(maxsize=8)
def _day_of(number: int) -> str:
    """The quota hash of the ``number``-th day since 1970-01-01 (UTC)."""
    return channel_day(_EPOCH + timedelta(days=number))


def days_around(at: float) -> list[str]:
    """The quota hashes of the day before, the day of and the day after ``at`` (a caller's
    clock): the script counting a send picks the one that is today on Redis's clock, so a
    caller's clock may be up to a day off."""
    day = int(at // 86_400)
    return [_day_of(day - 1), _day_of(day), _day_of(day + 1)]


#: Named where a permit has no day (none, or not one release.lua issued): never written (the
#: scripts give back only a permit the gate issued), but a key in the gate's hash slot.
NO_DAY = DAY % "none"


def permit_day(permit: str | None) -> str:
    """The quota hash a permit (``<delivery>@<time>``, Redis's clock) reserved its send in;
    NO_DAY for no permit or one without a time."""
    at = (permit or "").rpartition("@")[2]
    try:
        seconds = float(at)
    except ValueError:
        return NO_DAY
    if not 0 <= seconds < 253_402_300_800:  # years 1970-9999
        return NO_DAY
    return _day_of(int(seconds // 86_400))


def cooldown(scope: str) -> str:
    return COOL % scope


def tenant_scope(tenant: str) -> str:
    return f"t:{tenant}"


def team_scope(tenant: str, team: str) -> str:
    return f"g:{tenant}:{team}"


def channel_scope(tenant: str, team: str, channel: str) -> str:
    return f"c:{tenant}:{team}:{channel}"
