"""The rate limits as the dispatch scripts need them (per window, per tenant), and how long
they need to let a set of deliveries go (:func:`drain`: the dry-run's and ``status --watch``'s
estimates)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from threadcast.settings import Settings


class TenantRates(NamedTuple):
    """One tenant's limits. Published as a JSON list in this order, which the release
    script reads by position (a field added later goes last, so an older list still reads)."""

    tenant: int
    team: int
    channel_daily: int
    channel: int


@dataclass(frozen=True)
class Limits:
    """Requests per ``window`` seconds for each scope, and each channel's daily quota.

    The window is one second plus a guard: the simulator (like Graph) counts arrivals, and
    arrivals trail our decisions by the network's jitter.
    """

    window: float
    app: int
    tenant: int
    team: int
    channel: int
    channel_daily: int
    overrides: dict[str, TenantRates]

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        overrides = {
            tenant: TenantRates(
                settings.tenant_rps if o.tenant_rps is None else o.tenant_rps,
                settings.team_rps if o.team_rps is None else o.team_rps,
                settings.channel_daily if o.channel_daily is None else o.channel_daily,
                settings.channel_rps if o.channel_rps is None else o.channel_rps,
            )
            for tenant, o in settings.tenant_limits.items()
        }
        return cls(
            window=1.0 + settings.limit_guard_ms / 1000.0,
            app=settings.app_rps,
            tenant=settings.tenant_rps,
            team=settings.team_rps,
            channel=settings.channel_rps,
            channel_daily=settings.channel_daily,
            overrides=overrides,
        )

    def for_tenant(self, tenant: str) -> TenantRates:
        default = TenantRates(self.tenant, self.team, self.channel_daily, self.channel)
        return self.overrides.get(tenant, default)

    def overrides_json(self) -> dict[str, str]:
        return {tenant: json.dumps(list(values)) for tenant, values in self.overrides.items()}


@dataclass(frozen=True)
class Drain:
    """How long the gate needs to let a set of deliveries go, and the scope that decides it."""

    seconds: float  # math.inf: a scope of theirs is held at 0
    bound: str  # e.g. "team <id> at 4/s"


def drain(
    limits: Limits,
    per_team: Mapping[tuple[str, str], int],
    per_channel: Mapping[tuple[str, str, str], int] | None = None,
    ahead: int = 0,
) -> Drain:
    """The time the configured limits need to let ``per_team`` ((tenant, team) -> deliveries)
    through, as the gate counts: each scope lets ``limit`` of them go per window (one second
    plus the guard), so n deliveries take n windows / limit. The app takes all of them and
    ``ahead`` (others in the gate before them), each tenant its teams', each team its own,
    each channel its own (``per_channel``; unknown: one delivery per channel, one window).
    The slowest scope decides. The quota and Graph's own answers are not in it."""
    per_tenant: Counter[str] = Counter()
    for (tenant, _team), count in per_team.items():
        per_tenant[tenant] += count
    scopes = [(sum(per_team.values()) + ahead, limits.app, "the app")]
    for tenant, count in sorted(per_tenant.items()):
        rates = limits.for_tenant(tenant)
        scopes.append((count, rates.tenant, f"tenant {tenant}"))
        if per_channel is None:
            scopes.append((1, rates.channel, f"a channel of tenant {tenant}"))
    scopes += [
        (count, limits.for_tenant(tenant).team, f"team {team}")
        for (tenant, team), count in sorted(per_team.items())
    ]
    scopes += [
        (count, limits.for_tenant(tenant).channel, f"channel {channel}")
        for (tenant, _team, channel), count in sorted((per_channel or {}).items())
    ]
    worst = Drain(0.0, "no limit: every scope has room for them at once")
    for count, rate, scope in scopes:
        if count <= 0:
            continue
        seconds = math.inf if rate <= 0 else count * limits.window / rate
        if seconds > worst.seconds:
            worst = Drain(seconds, f"{scope} at {rate}/s" if rate > 0 else f"{scope} held at 0/s")
    return worst
