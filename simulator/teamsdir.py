"""Each tenant's teams and their channels, made up deterministically, for the audience reads.

A tenant has ``teams_per_tenant`` teams (``--teams-per-tenant``), each with
``channels_per_team`` channels, the first of them "General". Ids and names derive from the
tenant and the position alone, so every simulator (and every restart) shows a tenant the same
teams: ``Engineering``, ``Sales``, ... (``Engineering 2`` from the eleventh on), channels
``General``, ``Announcements``, ``Projects``, ... A team id is a GUID, a channel id has the
shape Teams gives it (``19:<32 hex>@thread.tacv2``).

This directory only answers ``GET /me/joinedTeams`` and ``GET /teams/{team-id}/channels``:
posts to any team and channel id are accepted as before (the simulator stays permissive), and
the withdrawals of :class:`~simulator.directory.Directory` (a team the user left, a channel
marked missing) hide teams and channels here too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from simulator.v1knobs import AudienceSettings

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://threadcast.invalid/simulator/teams")
TEAM_NAMES = (
    "Engineering",
    "Sales",
    "Marketing",
    "Support",
    "Finance",
    "Operations",
    "Legal",
    "People",
    "Research",
    "Design",
)
GENERAL = "General"
CHANNEL_NAMES = ("Announcements", "Projects", "Random", "Help", "Releases", "Events", "Ideas")


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    display_name: str
    description: str
    index: int


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    display_name: str
    description: str
    index: int


def _numbered(names: tuple[str, ...], index: int) -> str:
    round_, position = divmod(index, len(names))
    return names[position] + (f" {round_ + 1}" if round_ else "")


class TeamsDirectory:
    def __init__(self, settings: AudienceSettings) -> None:
        self.settings = settings
        self._teams: dict[str, dict[str, Team]] = {}
        """tenant → team id → team, made on first use (in order)."""

    def configure(self, settings: AudienceSettings) -> None:
        if settings.teams_per_tenant != self.settings.teams_per_tenant:
            self._teams.clear()
        self.settings = settings

    def teams(self, tenant_id: str) -> list[Team]:
        return list(self._of(tenant_id).values())

    def team(self, tenant_id: str, team_id: str) -> Team | None:
        return self._of(tenant_id).get(team_id)

    def channels(self, tenant_id: str, team: Team) -> list[Channel]:
        return [
            self._channel(tenant_id, team, index)
            for index in range(self.settings.channels_per_team)
        ]

    def _of(self, tenant_id: str) -> dict[str, Team]:
        teams = self._teams.get(tenant_id)
        if teams is None:
            made = (self._team(tenant_id, n) for n in range(self.settings.teams_per_tenant))
            teams = self._teams[tenant_id] = {team.id: team for team in made}
        return teams

    @staticmethod
    def _team(tenant_id: str, index: int) -> Team:
        name = _numbered(TEAM_NAMES, index)
        team_id = str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/team/{index}"))
        return Team(team_id, name, f"The {name} team (simulated).", index)

    @staticmethod
    def _channel(tenant_id: str, team: Team, index: int) -> Channel:
        name = GENERAL if index == 0 else _numbered(CHANNEL_NAMES, index - 1)
        digest = uuid.uuid5(_NAMESPACE, f"{tenant_id}/{team.id}/channel/{index}").hex
        return Channel(f"19:{digest}@thread.tacv2", name, f"{team.display_name}: {name}.", index)
