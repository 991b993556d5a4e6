"""Audiences: channels named by what they are instead of by their ids, resolved through Graph
at send time into the concrete targets a broadcast's deliveries are written for.

An audience spec is ``key=value`` pairs joined by ``;`` (spaces around them are ignored):

- ``tenant=T;channel=NAME``: the channels named NAME (exactly, as Graph compares
  ``displayName``) in every team the signed-in user of tenant T belongs to
  (``GET /me/joinedTeams``, then each team's ``GET /teams/{id}/channels`` filtered by name);
  archived teams are left out (their channels take no posts);
- ``tenant=T;team=G``: every channel of team G; ``tenant=T;team=G;channel=NAME``: the
  channels of team G named NAME;
- ``saved=NAME``: a saved audience (``threadcast audience save``), itself a list of specs
  (not ``saved=``) and explicit targets.

Graph is read with the tenant's delegated token from the shared token cache
(:class:`threadcast.tokens.TokenProvider`): ``threadcast login`` asks for
``Team.ReadBasic.All`` and ``Channel.ReadBasic.All`` when ``THREADCAST_AUDIENCES=true``.
Pages are followed (``@odata.nextLink``). Each read first takes a permit (threadcast/dispatch/
pacing.py) within Graph's documented limits for it, per app and per tenant
(:data:`READ_LIMITS`), and, for a team's channel list, the team's per-second limit shared
with the posts; a 429 or 503 is still waited out as its ``Retry-After`` asks, a bounded
number of times. An error names the audience (:class:`AudienceError`, a
ValidationError) or says Graph is unavailable (:class:`GraphUnavailableError`); either way
nothing is stored.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import redis

from threadcast import identity, ids
from threadcast.contract import Target
from threadcast.dispatch import keys
from threadcast.dispatch.limits import Limits, drain
from threadcast.dispatch.pacing import Scope
from threadcast.errors import (
    AudienceError,
    GraphUnavailableError,
    SignInRequiredError,
    ThreadcastError,
    ValidationError,
)
from threadcast.ledger import Ledger
from threadcast.lifecycle import gates
from threadcast.settings import Settings
from threadcast.tokencache import TokenCacheStore
from threadcast.tokens import TokenProvider

log = logging.getLogger("threadcast.audiences")

KEYS = ("tenant", "team", "channel", "saved")
SYNTAX = "tenant=T;channel=NAME, tenant=T;team=G[;channel=NAME] or saved=NAME"
MAX_CHANNEL_NAME = 50  # Teams' limit on a channel's name
#: Graph's documented limits on the audience reads, requests per second per app and per app
#: per tenant: ``GET /me/joinedTeams`` and ``GET /teams/{id}/channels``.
READ_LIMITS = {"joined_teams": (300, 30), "channels": (1200, 60)}
_SAVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Waits for a 429/503's Retry-After before giving up on one read; and the longest wait.
MAX_WAITS = 5
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Audience:
    """One parsed spec: ``saved`` alone, or ``tenant`` with ``team`` and/or ``channel``."""

    tenant: str | None = None
    team: str | None = None
    channel: str | None = None  # a channel's display name
    saved: str | None = None

    @property
    def spec(self) -> str:
        """The spec in its canonical form (what a saved audience stores)."""
        pairs = [(k, getattr(self, k)) for k in KEYS]
        return ";".join(f"{k}={v}" for k, v in pairs if v is not None)

    def describe(self) -> str:
        if self.saved is not None:
            return f"the saved audience {self.saved!r}"
        if self.team is None:
            return f"the channels named {self.channel!r} in every team tenant {self.tenant} joined"
        if self.channel is None:
            return f"every channel of team {self.team} in tenant {self.tenant}"
        return f"the channels named {self.channel!r} of team {self.team} in tenant {self.tenant}"


def parse_spec(where: str, raw: object) -> Audience:
    """``raw`` as an :class:`Audience`, or an AudienceError naming ``where`` and the spec."""
    if isinstance(raw, Audience):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise AudienceError(where, raw, f"must be an audience spec: {SYNTAX}")
    values = _pairs(where, raw)
    if "saved" in values:
        if len(values) > 1:
            raise AudienceError(where, raw, "saved=NAME stands alone")
        return Audience(saved=saved_name(where, values["saved"], raw))
    if "tenant" not in values:
        raise AudienceError(where, raw, f"names no tenant; use {SYNTAX}")
    if "team" not in values and "channel" not in values:
        raise AudienceError(where, raw, "needs team=G and/or channel=NAME beside the tenant")
    tenant = _id(where, raw, "tenant", values["tenant"])
    team = None if "team" not in values else _id(where, raw, "team", values["team"])
    channel = values.get("channel")
    if channel is not None and (len(channel) > MAX_CHANNEL_NAME or _CONTROL.search(channel)):
        reason = f"channel must be a channel's name, 1-{MAX_CHANNEL_NAME} printable characters"
        raise AudienceError(where, raw, reason)
    return Audience(tenant=tenant, team=team, channel=channel)


def _pairs(where: str, raw: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for piece in raw.split(";"):
        if not piece.strip():
            continue
        key, sep, value = piece.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise AudienceError(where, raw, f"{piece.strip()!r} is not key=value; use {SYNTAX}")
        if key not in KEYS:
            raise AudienceError(where, raw, f"unknown key {key!r}; use {', '.join(KEYS)}")
        if key in values:
            raise AudienceError(where, raw, f"{key} is given twice")
        if not value:
            raise AudienceError(where, raw, f"{key} is empty")
        values[key] = value
    return values


def saved_name(where: str, name: object, spec: object = None) -> str:
    """A saved audience's name: 1-64 letters, digits, ``.``, ``_`` or ``-``."""
    if not isinstance(name, str) or not _SAVED_NAME.fullmatch(name):
        reason = "a saved audience's name is 1-64 letters, digits, '.', '_' or '-'"
        raise AudienceError(where, name if spec is None else spec, reason)
    return name


def _id(where: str, raw: str, key: str, value: str) -> str:
    try:
        return ids.guid(key, value)
    except ValidationError as exc:
        raise AudienceError(where, raw, f"{key} {exc.reason}") from None


def parse_specs(where: str, raw: Sequence[object]) -> list[Audience]:
    """Every spec of ``raw`` parsed, each error naming ``where[i]``."""
    if isinstance(raw, (str, bytes, Mapping)):
        raise AudienceError(where, raw, "must be a list of audience specs")
    return [parse_spec(f"{where}[{i}]", spec) for i, spec in enumerate(raw)]


def saved_definition(
    where: str, specs: Sequence[object], targets: Sequence[Target | Mapping[str, object]]
) -> tuple[list[str], list[dict[str, str]]]:
    """What ``threadcast audience save`` stores, checked: specs (no ``saved=``) in their
    canonical form and explicit targets; at least one of them."""
    audiences = []
    for i, raw in enumerate(specs):
        audience = parse_spec(f"{where}[{i}]", raw)
        if audience.saved is not None:
            raise AudienceError(f"{where}[{i}]", raw, "a saved audience cannot hold another")
        audiences.append(audience.spec)
    checked = [
        t if isinstance(t, Target) else Target.parse(f"targets[{i}]", t)
        for i, t in enumerate(targets)
    ]
    if not audiences and not checked:
        raise AudienceError(where, [], "give at least one audience spec or target")
    plain = [{"tenant": t.tenant, "group": t.group, "channel": t.channel} for t in checked]
    return audiences, plain


@dataclass(frozen=True)
class Resolved:
    """What one spec resolved to."""

    spec: str
    targets: tuple[Target, ...]


@dataclass
class Resolution:
    """Every spec's targets, and the distinct targets of them all in order."""

    parts: list[Resolved] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    # (tenant, group, channel) -> (team name, channel name), where Graph named them
    names: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)  # Retry-After waits honoured (seconds)

    def add(self, spec: str, found: Sequence[Target]) -> None:
        self.parts.append(Resolved(spec, tuple(found)))
        seen = {_key(t) for t in self.targets}
        for target in found:
            if _key(target) not in seen:
                seen.add(_key(target))
                self.targets.append(target)

    def per_tenant(self) -> dict[str, int]:
        return dict(Counter(t.tenant for t in self.targets))


def _key(target: Target) -> tuple[str, str, str]:
    return target.tenant, target.group, target.channel


class AudienceResolver:
    """Resolves audience specs through Graph. Use as a context manager, or call close."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        client: redis.Redis,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._http = identity.http_client(settings)
        store = TokenCacheStore.for_settings(settings, client, ledger.token_caches)
        self._tokens = TokenProvider(
            settings, store, client, self._http, settings.token_refresh_margin
        )
        self._sleep = sleep
        self._pacer = gates.pacer(client, settings)
        self._limits = Limits.from_settings(settings)
        self.waits: list[float] = []  # Retry-After waits honoured (seconds), for the curious
        self.paced = 0.0  # seconds waited for permits within the read limits

    def resolve(self, specs: Sequence[object], where: str = "audiences") -> Resolution:
        """Every spec resolved, in order; the targets distinct. Raises AudienceError naming
        the spec (``where[i]``), or GraphUnavailableError."""
        audiences = parse_specs(where, specs)
        resolution = Resolution()
        for i, audience in enumerate(audiences):
            named = f"{where}[{i}]"
            if audience.saved is None:
                resolution.add(audience.spec, self._resolve_one(named, audience, resolution))
                continue
            saved = self._ledger.audiences.get(audience.saved)
            if saved is None:
                reason = f"no saved audience named {audience.saved!r} (threadcast audience list)"
                raise AudienceError(named, audience.spec, reason)
            found: list[Target] = []
            for j, spec in enumerate(saved.audiences):
                inner = parse_spec(f"{named} (saved {saved.name}: audiences[{j}])", spec)
                found += self._resolve_one(f"{named} ({saved.name}: {spec})", inner, resolution)
            found += [Target.parse(f"{named}.targets[{j}]", t) for j, t in enumerate(saved.targets)]
            resolution.add(audience.spec, found)
        resolution.waits = list(self.waits)
        return resolution

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AudienceResolver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _resolve_one(self, where: str, audience: Audience, into: Resolution) -> list[Target]:
        assert audience.tenant is not None
        tenant = audience.tenant
        if audience.team is not None:
            teams = [(audience.team, "")]
        else:
            url = f"{self._settings.graph_url}/v1.0/me/joinedTeams"
            teams = [
                (str(team["id"]), str(team.get("displayName") or ""))
                for team in self._items(
                    where, audience, url, {}, "the teams its user joined", self._scopes(tenant)
                )
                if not team.get("isArchived")
            ]
        params = {"$select": "id,displayName"}
        if audience.channel is not None:
            quoted = audience.channel.replace("'", "''")  # OData doubles a quote in a string
            params["$filter"] = f"displayName eq '{quoted}'"
        found: list[Target] = []
        for team, team_name in teams:
            url = f"{self._settings.graph_url}/v1.0/teams/{quote(team, safe='')}/channels"
            scopes = self._scopes(tenant, team)
            what = f"the channels of {team}"
            for channel in self._items(where, audience, url, params, what, scopes):
                target = Target(tenant, ids.guid("team id", team), str(channel["id"]))
                into.names[_key(target)] = (team_name, str(channel.get("displayName") or ""))
                found.append(target)
        log.info("audience %s resolved to %d channels", audience.spec, len(found))
        return found

    def _scopes(self, tenant: str, team: str | None = None) -> list[Scope]:
        """The scopes a read takes its permit from: its kind's app and tenant limits, and
        for a team's channel list the team's (Graph counts every request on a team)."""
        kind = "joined_teams" if team is None else "channels"
        app, per_tenant = READ_LIMITS[kind]
        scopes = [
            Scope(
                f"{kind} reads of the app",
                keys.read_log(kind, "app"),
                keys.read_cool(kind, "app"),
                app,
            ),
            # Spread evenly, as an edit's: a burst of a window's reads arrived late enough to
            # overrun the next window (2 429s in CI's demo runs at 60/s).
            Scope(
                f"{kind} reads of tenant {tenant}",
                keys.read_log(kind, tenant),
                keys.read_cool(kind, tenant),
                per_tenant,
                even=True,
            ),
        ]
        if team is not None:
            scopes.append(
                Scope(
                    f"team {team}",
                    keys.team_log(tenant, team),
                    keys.cooldown(keys.team_scope(tenant, team)),
                    self._limits.for_tenant(tenant).team,
                )
            )
        return scopes

    def _items(
        self,
        where: str,
        audience: Audience,
        url: str,
        params: dict[str, str],
        what: str,
        scopes: list[Scope],
    ) -> Iterator[dict[str, Any]]:
        """Every item of a Graph collection, page after page."""
        query: dict[str, str] | None = params
        next_url: str | None = url
        while next_url is not None:
            self._pace(scopes)
            page = self._get(where, audience, next_url, query, what)
            value = page.get("value")
            if not isinstance(value, list):
                raise GraphUnavailableError(f"Graph answered {what} without a value list")
            yield from value
            link = page.get("@odata.nextLink")
            if link and not str(link).startswith(f"{self._settings.graph_url}/"):
                # The token goes with every page: only ever to Graph itself.
                raise GraphUnavailableError(
                    f"Graph answered {what} with a next page elsewhere ({str(link)[:100]})"
                )
            next_url, query = (str(link), None) if link else (None, None)

    def _pace(self, scopes: list[Scope]) -> None:
        """Wait for a permit of every scope (a few ms of Redis when there is room)."""
        while not (permit := self._pacer.take(scopes, ids.new_request_id())):
            self.paced += permit.wait
            self._sleep(permit.wait)

    def _get(
        self,
        where: str,
        audience: Audience,
        url: str,
        params: dict[str, str] | None,
        what: str,
    ) -> dict[str, Any]:
        assert audience.tenant is not None
        tenant, spec = audience.tenant, audience.spec
        refused_once = False
        waits = 0
        while True:
            try:
                token = self._tokens.token(tenant)
            except SignInRequiredError as exc:
                raise AudienceError(where, spec, str(exc)) from None
            except ThreadcastError as exc:
                raise GraphUnavailableError(f"{where}: {exc}") from None
            try:
                response = self._http.get(
                    url, params=params, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise GraphUnavailableError(
                    f"{where}: Graph could not be reached to list {what} "
                    f"({type(exc).__name__}); nothing was stored, try again"
                ) from exc
            status = response.status_code
            if status == 200:
                return dict(response.json())
            message = _graph_message(response)
            if status == 401 and not refused_once:
                refused_once = True  # a token refused: the next call refreshes it
                self._tokens.reject(tenant, token)
                continue
            if status in (429, 503) and waits < MAX_WAITS:
                waits += 1
                wait = _retry_after(response, self._settings.retry_after_cap)
                log.info("Graph answered %d listing %s: waiting %.0f s", status, what, wait)
                self.waits.append(wait)
                self._sleep(wait)
                continue
            raise _refusal(where, audience, what, status, message)


def _graph_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return response.text[:200]


def _retry_after(response: httpx.Response, cap: float) -> float:
    try:
        wait = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.0), cap, MAX_RETRY_AFTER)


def _refusal(
    where: str, audience: Audience, what: str, status: int, message: str
) -> ThreadcastError:
    tenant, spec = audience.tenant, audience.spec
    graph = f"Graph answered {status} {message!r} listing {what}"
    if status == 403 and "not a member" in message.lower():
        return AudienceError(
            where, spec, f"the signed-in user of tenant {tenant} is not a member ({graph})"
        )
    if status == 403:
        return AudienceError(
            where,
            spec,
            f"tenant {tenant}'s sign-in lacks the permission to read teams and channels "
            f"(Team.ReadBasic.All, Channel.ReadBasic.All): set THREADCAST_AUDIENCES=true and "
            f"run threadcast login --tenant {tenant} ({graph})",
        )
    if status == 404:
        return AudienceError(where, spec, f"tenant {tenant} has no team {audience.team} ({graph})")
    if status in (400, 401):
        return AudienceError(where, spec, graph)
    return GraphUnavailableError(f"{where} ({spec}): {graph}; nothing was stored, try again")


# --- how long it will take -------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """How long a send of ``targets`` takes under the configured limits behind the backlog."""

    seconds: float  # math.inf: a tenant's limits hold its deliveries
    bound: str  # the scope that decides it
    backlog: int  # deliveries queued or retrying in the ledger now
    backlog_ahead: int  # of those, in the tenants of these targets
    quota_days: int  # extra days a channel's daily quota spreads them over (0: none)
    limits: str

    def describe(self) -> str:
        if math.isinf(self.seconds):
            took = f"never while {self.bound}"
        else:
            took = f"about {_duration(self.seconds)} (bound by {self.bound})"
        quota = (
            f"; the channels' daily quota spreads them over {self.quota_days} more day(s)"
            if self.quota_days
            else ""
        )
        return (
            f"estimate: {took}{quota}; behind a backlog of {self.backlog} deliveries queued "
            f"or retrying ({self.backlog_ahead} in these tenants)\nlimits: {self.limits}"
        )


def estimate(
    settings: Settings, targets: Sequence[Target], backlog: Mapping[tuple[str, str], int]
) -> Estimate:
    """How long these targets' posts take under the configured limits, behind what waits
    (``backlog``: queued or retrying deliveries per (tenant, team)): the slowest scope's time
    for them (:func:`threadcast.dispatch.limits.drain`: the app with the whole backlog, each
    tenant and team of theirs with its own, each channel), and the extra days the channels'
    daily quota spreads them over. Posts already made today and Graph's own answers are not
    in it."""
    limits = Limits.from_settings(settings)
    tenants = {t.tenant for t in targets}
    per_team: Counter[tuple[str, str]] = Counter((t.tenant, t.group) for t in targets)
    new_channel = Counter(_key(t) for t in targets)
    total_backlog = sum(backlog.values())
    ahead = 0
    for (tenant, group), count in backlog.items():
        if tenant in tenants:
            per_team[(tenant, group)] += count
        else:
            ahead += count
    found = drain(limits, per_team, new_channel, ahead) if targets else None
    seconds, bound = (found.seconds, found.bound) if found else (0.0, "no targets")
    described = (
        f"app {limits.app}/s, tenant {limits.tenant}/s, team {limits.team}/s, channel "
        f"{limits.channel}/s, {limits.channel_daily} posts per channel per day"
        + (f"; {len(limits.overrides)} tenant override(s)" if limits.overrides else "")
    )
    in_tenants = total_backlog - ahead
    days = _quota_days(limits, new_channel)
    return Estimate(seconds, bound, total_backlog, in_tenants, days, described)


def _quota_days(limits: Limits, per_channel: Mapping[tuple[str, str, str], int]) -> int:
    """The extra days the channels' daily quota spreads these deliveries over."""
    days = 0
    for (tenant, _group, _channel), count in per_channel.items():
        daily = limits.for_tenant(tenant).channel_daily
        if daily:
            days = max(days, math.ceil(count / daily) - 1)
    return days


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def render(resolution: Resolution, found: Estimate, *, listing: bool = True) -> str:
    """What ``send --dry-run`` prints: each audience's count, the targets, their count per
    tenant, and the estimate."""
    lines = [f"audience {r.spec}: {len(r.targets)} channels" for r in resolution.parts]
    if listing:
        lines.append("targets (tenant, group, channel, team / channel):")
        for target in resolution.targets:
            team, channel = resolution.names.get(_key(target), ("", ""))
            named = f"  {team} / {channel}" if team or channel else ""
            lines.append(f"  {target.tenant} {target.group} {target.channel}{named}")
    per_tenant = resolution.per_tenant()
    lines.append(f"{len(resolution.targets)} distinct channels in {len(per_tenant)} tenant(s):")
    lines += [f"  tenant {tenant}: {count}" for tenant, count in sorted(per_tenant.items())]
    lines.append(found.describe())
    lines.append("dry run: nothing was stored or sent")
    return "\n".join(lines)
