"""What Graph knows besides the token: each tenant's consent, its user's team memberships,
which channels exist, and which endpoints exist at all.

Everything starts permissive, as the simulator always was: every permission consented, the
signed-in user a member of every team, every channel there, the beta chatthreads segment
alive. The admin API withdraws these one by one (``/_sim/tenants/{tenant}/...``) and
``chatthreads_removed`` removes the segment. None of it is forgotten by ``POST /_sim/reset``:
it describes the tenants, not what a rehearsal measured.

The Graph hot path asks :meth:`Directory.check_target` and :meth:`Consent.withdrawn` on every
post: both are a truth test of an empty container unless a rehearsal withdrew something.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

from simulator.errors import GraphError
from simulator.knobs import GraphSettings
from simulator.payload import bad_request
from simulator.scopes import ScopeGrant

NOT_A_MEMBER = "User is not a member of the team"
"""The stable start of the 403 message for a team the signed-in user is not a member of."""
MISSING_SCOPE = "Missing scope permissions on the request."
"""The stable start of Graph's 403 message for a token without the endpoint's permission."""
_NOTHING: frozenset[str] = frozenset()
_Key = TypeVar("_Key", bound=Hashable)


def segment_removed() -> GraphError:
    """Graph's answer to the beta chatthreads URL since the segment was removed (~2020)."""
    return bad_request("Resource not found for the segment 'chatThreads'.")


def missing_scope(accepted: Iterable[str], granted: Iterable[str]) -> GraphError:
    """Graph's 403 for a token that carries none of the permissions the endpoint accepts."""
    on_request = " ".join(sorted(granted)) or "(none)"
    return GraphError(
        403,
        "Forbidden",
        f"{MISSING_SCOPE} API requires one of '{', '.join(sorted(accepted))}'. "
        f"Scopes on the request '{on_request}'",
    )


class Consent:
    """Per tenant, the Graph permissions whose consent was withdrawn (none at first).

    Names compare case-insensitively, as permission names do in Entra ID.
    """

    def __init__(self) -> None:
        self._withdrawn: dict[str, dict[str, str]] = {}
        """tenant → lower-cased name → the name as the admin call spelt it."""
        self._lowered: dict[str, frozenset[str]] = {}
        """tenant → lower-cased withdrawn names, for the hot path."""

    def change(self, tenant_id: str, *, revoke: Iterable[str], grant: Iterable[str]) -> None:
        names = dict(self._withdrawn.get(tenant_id, {}))
        names.update({name.lower(): name for name in revoke})
        for name in grant:
            names.pop(name.lower(), None)
        self._withdrawn[tenant_id] = names
        self._lowered[tenant_id] = frozenset(names)

    def withdrawn(self, tenant_id: str) -> frozenset[str]:
        """The tenant's withdrawn permissions, lower-cased; empty for nearly every tenant."""
        return self._lowered.get(tenant_id, _NOTHING) if self._lowered else _NOTHING

    def withdrawn_names(self, tenant_id: str) -> list[str]:
        return sorted(self._withdrawn.get(tenant_id, {}).values())

    def consented(self, tenant_id: str, grant: ScopeGrant) -> ScopeGrant:
        """``grant`` without the permissions the tenant withdrew: what a new token carries."""
        withdrawn = self.withdrawn(tenant_id)
        return grant.without(withdrawn) if withdrawn else grant


def consented_scopes(scopes: frozenset[str], withdrawn: frozenset[str]) -> frozenset[str]:
    return frozenset(scope for scope in scopes if scope.lower() not in withdrawn)


class Directory:
    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings
        self.consent = Consent()
        self._outside: set[tuple[str, str]] = set()
        """(tenant, team): teams the tenant's signed-in user is not a member of."""
        self._missing: set[tuple[str, str, str]] = set()
        """(tenant, team, channel): channels that do not exist."""

    def configure(self, settings: GraphSettings) -> None:
        self.settings = settings

    def set_member(self, tenant_id: str, team_id: str, member: bool) -> None:
        _toggle(self._outside, (tenant_id, team_id), present=not member)

    def is_member(self, tenant_id: str, team_id: str) -> bool:
        return (tenant_id, team_id) not in self._outside

    def set_channel(self, tenant_id: str, team_id: str, channel_id: str, exists: bool) -> None:
        _toggle(self._missing, (tenant_id, team_id, channel_id), present=not exists)

    def channel_exists(self, tenant_id: str, team_id: str, channel_id: str) -> bool:
        return (tenant_id, team_id, channel_id) not in self._missing

    def check_target(self, tenant_id: str, team_id: str, channel_id: str) -> None:
        """Refuse a post to a team the user is not in (403) or to a missing channel (404)."""
        if self._outside and not self.is_member(tenant_id, team_id):
            raise GraphError(
                403,
                "Forbidden",
                f"{NOT_A_MEMBER} '{team_id}': only its members can post to its channels.",
            )
        if self._missing and not self.channel_exists(tenant_id, team_id, channel_id):
            raise GraphError(
                404,
                "NotFound",
                f"Channel '{channel_id}' was not found in team '{team_id}'.",
            )


def _toggle(found: set[_Key], key: _Key, *, present: bool) -> None:
    if present:
        found.add(key)
    else:
        found.discard(key)
