"""The settings of the Graph v1.0 message parts, message edits and audience reads.

A table of its own beside :mod:`simulator.knobs` (whose settings and ``GET /_sim/config``
answer keep their shape): the command line has a flag for each (``--edit-app-rps``), the
admin API reads and changes them at ``GET|POST /_sim/config/v1``.

* ``message_parts`` (on by default): the v1.0 messages endpoint takes, beside ``body``, the
  ``subject``, ``importance``, ``attachments``, ``hostedContents`` and ``mentions`` of a
  chatMessage, as Graph v1.0 does (:mod:`simulator.messageparts`). Off, a message is its body
  only, as the simulator answered before.
* Throttling of the other Teams requests, per app per tenant and per app across all tenants,
  as Graph documents them (concepts/throttling-limits.md, "Microsoft Teams service limits"):

  ====================================  ===============  ==========================
  request                               per app+tenant   per app, all tenants
  ====================================  ===============  ==========================
  PATCH message, POST softDelete        30 rps           300 rps  ("Other API calls
                                                                  for Microsoft Teams")
  GET /me/joinedTeams                   30 rps           300 rps
  GET /teams/{team-id}/channels         60 rps           1200 rps
  ====================================  ===============  ==========================

  0 is off; ``throttle_defaults`` sets all six.
* The directory of teams behind the audience reads: ``teams_per_tenant`` teams per tenant,
  each with ``channels_per_team`` channels (the first is "General"; a team has at most 200
  channels, the Teams limit), and ``page_size`` items per page of a collection.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulator.knobs import (
    THROTTLE_DEFAULTS,
    Knob,
    KnobError,
    count,
    only,
    parse_setting,
    switch,
    throttle_defaults,
)

MAX_CHANNELS_PER_TEAM = 200
"""Microsoft Teams limits: 200 channels per team (standard channels, deleted ones included)."""
MAX_TEAMS_PER_TENANT = 100_000
MAX_PAGE_SIZE = 999
"""The largest ``$top`` Graph accepts on most collections."""


@dataclass(frozen=True, slots=True)
class OperationLimits:
    """Requests per second (sliding 1 s window) per kind of request; 0 means not enforced."""

    edit_app_rps: int = 0
    edit_tenant_rps: int = 0
    joined_teams_app_rps: int = 0
    joined_teams_tenant_rps: int = 0
    channels_app_rps: int = 0
    channels_tenant_rps: int = 0

    @property
    def enabled(self) -> bool:
        return any(dataclasses.astuple(self))


DOCUMENTED_OPERATION_LIMITS = OperationLimits(
    edit_app_rps=300,
    edit_tenant_rps=30,
    joined_teams_app_rps=300,
    joined_teams_tenant_rps=30,
    channels_app_rps=1200,
    channels_tenant_rps=60,
)


@dataclass(frozen=True, slots=True)
class AudienceSettings:
    teams_per_tenant: int = 10
    channels_per_team: int = 3
    page_size: int = 20


@dataclass(frozen=True, slots=True)
class V1Knobs:
    """The current value of every v1.0 setting."""

    message_parts: bool = True
    limits: OperationLimits = OperationLimits()
    audience: AudienceSettings = AudienceSettings()

    def to_json(self) -> dict[str, object]:
        return {
            "message_parts": self.message_parts,
            **dataclasses.asdict(self.limits),
            **dataclasses.asdict(self.audience),
        }

    def changed(self, changes: Mapping[str, object]) -> V1Knobs:
        """These settings with ``changes`` applied, all checked first (:class:`KnobError`
        names the first bad one; nothing is applied then). ``throttle_defaults: true`` sets
        the six documented limits; limits named alongside it win."""
        values = dict(changes)
        limits = self.limits
        if throttle_defaults(values.pop(THROTTLE_DEFAULTS, False)):
            limits = DOCUMENTED_OPERATION_LIMITS
        parsed = {
            name: parse_setting(V1_KNOBS_BY_NAME, name, value) for name, value in values.items()
        }
        return V1Knobs(
            message_parts=bool(parsed.pop("message_parts", self.message_parts)),
            limits=dataclasses.replace(limits, **only(parsed, _LIMIT_NAMES)),
            audience=dataclasses.replace(self.audience, **only(parsed, _AUDIENCE_NAMES)),
        )


def _bounded(low: int, high: int) -> Callable[[object], object]:
    def parse(value: object) -> int:
        number = count(value)
        if not low <= number <= high:
            raise KnobError(f"must be an integer from {low} to {high}, got {json.dumps(value)}")
        return number

    return parse


V1_KNOBS: tuple[Knob, ...] = (
    Knob(
        "message_parts",
        switch,
        "BOOL",
        "v1.0 messages take subject, importance, attachments (cards), hostedContents (images) "
        "and mentions as Graph v1.0 does (default: on); off: the body only, as the simulator "
        "answered before. The bare flag means true",
    ),
    Knob("edit_app_rps", count, "N", "PATCH/softDelete requests/s per app (documented: 300)"),
    Knob("edit_tenant_rps", count, "N", "PATCH/softDelete requests/s per app per tenant (30)"),
    Knob("joined_teams_app_rps", count, "N", "GET /me/joinedTeams requests/s per app (300)"),
    Knob("joined_teams_tenant_rps", count, "N", "GET /me/joinedTeams per app per tenant (30)"),
    Knob("channels_app_rps", count, "N", "GET /teams/{id}/channels requests/s per app (1200)"),
    Knob("channels_tenant_rps", count, "N", "GET /teams/{id}/channels per app per tenant (60)"),
    Knob(
        "teams_per_tenant",
        _bounded(0, MAX_TEAMS_PER_TENANT),
        "N",
        "teams in each tenant's directory, all joined by its user (default 10)",
    ),
    Knob(
        "channels_per_team",
        _bounded(1, MAX_CHANNELS_PER_TEAM),
        "N",
        "channels of each directory team, the first named General (default 3, at most 200)",
    ),
    Knob("page_size", _bounded(1, MAX_PAGE_SIZE), "N", "items per page of a Graph collection (20)"),
)
V1_KNOBS_BY_NAME = {knob.name: knob for knob in V1_KNOBS}
_LIMIT_NAMES = frozenset(field.name for field in dataclasses.fields(OperationLimits))
_AUDIENCE_NAMES = frozenset(field.name for field in dataclasses.fields(AudienceSettings))
