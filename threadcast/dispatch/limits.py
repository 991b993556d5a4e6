"""The rate limits as the dispatch scripts need them: per window, per tenant."""

from __future__ import annotations

import json
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
