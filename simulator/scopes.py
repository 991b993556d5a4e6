"""Which scopes a token request asks for, and what the simulator grants for them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT_GRAPH_SCOPE = "Group.ReadWrite.All"
CHANNEL_MESSAGE_SEND = "ChannelMessage.Send"
CHANNEL_MESSAGE_READ_WRITE = "ChannelMessage.ReadWrite"
"""Delegated: update and soft-delete the signed-in user's channel messages."""
TEAM_READ_BASIC_ALL = "Team.ReadBasic.All"
"""Delegated, least privileged for ``GET /me/joinedTeams``."""
CHANNEL_READ_BASIC_ALL = "Channel.ReadBasic.All"
"""Delegated, least privileged for ``GET /teams/{team-id}/channels``."""
_GRAPH_PREFIXES = ("https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000/")


@dataclass(frozen=True, slots=True)
class ScopeGrant:
    """Graph permissions granted (bare names, e.g. ``Group.ReadWrite.All``) plus OIDC scopes."""

    graph: tuple[str, ...]
    oidc: frozenset[str]

    @property
    def wants_refresh_token(self) -> bool:
        return "offline_access" in self.oidc

    @property
    def wants_id_token(self) -> bool:
        return "openid" in self.oidc

    def without(self, withdrawn: frozenset[str]) -> ScopeGrant:
        """These scopes minus the Graph permissions in ``withdrawn`` (lower-cased names)."""
        graph = tuple(name for name in self.graph if name.lower() not in withdrawn)
        return dataclasses.replace(self, graph=graph)

    def response_scope(self) -> str:
        """The ``scope`` field of a token response (the identity platform omits offline_access)."""
        return " ".join([*self.graph, *sorted(self.oidc - {"offline_access"})])


def _graph_permission(scope: str) -> str:
    lowered = scope.lower()
    for prefix in _GRAPH_PREFIXES:
        if lowered.startswith(prefix):
            scope = scope[len(prefix) :]
            break
    # .default means what the app is consented for: what threadcast needs.
    return DEFAULT_GRAPH_SCOPE if scope == ".default" else scope


def parse_scopes(raw: str) -> ScopeGrant:
    """Every Graph permission asked for, Group.ReadWrite.All if none.

    All are granted here; the tenant's consent (:class:`~simulator.directory.Consent`) is
    applied when a token is minted.
    """
    oidc: set[str] = set()
    graph: list[str] = []
    for scope in raw.split():
        if scope.lower() in OIDC_SCOPES:
            oidc.add(scope.lower())
            continue
        permission = _graph_permission(scope)
        if permission not in graph:
            graph.append(permission)
    return ScopeGrant(tuple(graph) or (DEFAULT_GRAPH_SCOPE,), frozenset(oidc))
