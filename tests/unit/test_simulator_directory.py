"""The directory: who may post where, and the stable message prefixes clients classify by."""

from __future__ import annotations

import pytest

from simulator.directory import (
    MISSING_SCOPE,
    NOT_A_MEMBER,
    Directory,
    missing_scope,
    segment_removed,
)
from simulator.errors import GraphError
from simulator.knobs import GraphSettings

TENANT, TEAM, CHANNEL = "tenant-1", "team-1", "19:a@thread.tacv2"


def _refusal(directory: Directory, tenant: str = TENANT, channel: str = CHANNEL) -> GraphError:
    with pytest.raises(GraphError) as caught:
        directory.check_target(tenant, TEAM, channel)
    return caught.value


def test_everything_is_open_at_first() -> None:
    directory = Directory(GraphSettings())
    directory.check_target(TENANT, TEAM, CHANNEL)
    assert directory.is_member(TENANT, TEAM) and directory.channel_exists(TENANT, TEAM, CHANNEL)


def test_a_team_the_user_is_not_a_member_of_is_403_for_that_tenant_only() -> None:
    directory = Directory(GraphSettings())
    directory.set_member(TENANT, TEAM, False)
    error = _refusal(directory)
    assert (error.status, error.code) == (403, "Forbidden")
    assert error.message.startswith(NOT_A_MEMBER) and TEAM in error.message
    directory.check_target("tenant-2", TEAM, CHANNEL)
    directory.set_member(TENANT, TEAM, True)
    directory.check_target(TENANT, TEAM, CHANNEL)


def test_a_missing_channel_is_404_and_membership_is_judged_first() -> None:
    directory = Directory(GraphSettings())
    directory.set_channel(TENANT, TEAM, CHANNEL, False)
    error = _refusal(directory)
    assert (error.status, error.code) == (404, "NotFound")
    assert CHANNEL in error.message
    directory.check_target(TENANT, TEAM, "19:b@thread.tacv2")
    directory.set_member(TENANT, TEAM, False)
    assert _refusal(directory).status == 403
    directory.set_member(TENANT, TEAM, True)
    directory.set_channel(TENANT, TEAM, CHANNEL, True)
    directory.check_target(TENANT, TEAM, CHANNEL)


def test_the_tenant_level_and_target_level_403s_are_told_apart_by_their_start() -> None:
    scope = missing_scope({"ChannelMessage.Send", "Group.ReadWrite.All"}, set())
    assert scope.message == (
        "Missing scope permissions on the request. API requires one of "
        "'ChannelMessage.Send, Group.ReadWrite.All'. Scopes on the request '(none)'"
    )
    assert scope.message.startswith(MISSING_SCOPE)
    assert not NOT_A_MEMBER.startswith(MISSING_SCOPE[:7])


def test_the_removed_segment_answer() -> None:
    error = segment_removed()
    assert (error.status, error.code, error.message) == (
        400,
        "BadRequest",
        "Resource not found for the segment 'chatThreads'.",
    )
