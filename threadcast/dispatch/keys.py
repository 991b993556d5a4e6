"""Redis key names of the dispatch structures.

Every key carries the hash tag ``{dispatch}`` so that, on a Redis Cluster, all of them live
in one slot: the release and promote scripts derive per-tenant, per-team and per-channel
keys (and the day's quota hash, named from Redis's clock) by the same patterns as below.
"""

from __future__ import annotations

from datetime import datetime

from threadcast.constants import KEY_PREFIX

PREFIX = KEY_PREFIX + "{dispatch}:"
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


def teams(tenant: str) -> str:
    return f"{PREFIX}teams:{tenant}"


def queue(tenant: str, team: str) -> str:
    return f"{PREFIX}q:{tenant}:{team}"


def tenant_log(tenant: str) -> str:
    return f"{PREFIX}log:t:{tenant}"


def team_log(tenant: str, team: str) -> str:
    return f"{PREFIX}log:g:{tenant}:{team}"


def channel_log(tenant: str, team: str, channel: str) -> str:
    return f"{PREFIX}log:c:{tenant}:{team}:{channel}"


def channel_day(day: datetime) -> str:
    """The day's quota hash; ``day`` is a UTC date. Field ``<tenant>:<team>:<channel>``: the
    posts started that day; ``r|<tenant>:<team>:<channel>``: permits released that day and not
    yet started. It expires two days after its last write."""
    return f"{PREFIX}day:{day:%Y%m%d}"


def cooldown(scope: str) -> str:
    """A scope's Retry-After cooldown (``scope`` as :func:`tenant_scope` etc., or ``app``): a
    string holding when it ends, which expires then."""
    return f"{PREFIX}cool:{scope}"


def tenant_scope(tenant: str) -> str:
    return f"t:{tenant}"


def team_scope(tenant: str, team: str) -> str:
    return f"g:{tenant}:{team}"


def channel_scope(tenant: str, team: str, channel: str) -> str:
    return f"c:{tenant}:{team}:{channel}"
