"""Which Graph resource a URL names, and which method it takes.

* ``POST /beta/groups/{group-id}/channels/{channel-id}/chatthreads`` (the one threadcast uses)
* ``POST /v1.0/teams/{team-id}/channels/{channel-id}/messages``
* ``PATCH /v1.0/teams/{team-id}/channels/{channel-id}/messages/{message-id}``
* ``POST /v1.0/teams/{team-id}/channels/{channel-id}/messages/{message-id}/softDelete``
* ``GET /v1.0/me/joinedTeams``
* ``GET /v1.0/teams/{team-id}/channels``

A team's id is its group's id, so the first two name the same team (and the same throttling
scope). Any other URL below a Graph version gets the error Graph gives for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from simulator.errors import GraphError
from simulator.payload import bad_request
from simulator.posts import (
    CHANNEL_MESSAGES,
    CHATTHREADS,
    JOINED_TEAMS,
    LIST_CHANNELS,
    MESSAGE_SOFT_DELETE,
    MESSAGE_UPDATE,
)
from simulator.scopes import (
    CHANNEL_MESSAGE_READ_WRITE,
    CHANNEL_MESSAGE_SEND,
    CHANNEL_READ_BASIC_ALL,
    DEFAULT_GRAPH_SCOPE,
    TEAM_READ_BASIC_ALL,
)
from simulator.tenants import is_guid

_CHANNEL = rb"^/v1\.0/teams/([^/]+)/channels/([^/]+)/messages"
_ENDPOINTS = (
    (re.compile(rb"^/beta/groups/([^/]+)/channels/([^/]+)/chatthreads$"), CHATTHREADS, "POST"),
    (re.compile(_CHANNEL + rb"$"), CHANNEL_MESSAGES, "POST"),
    (re.compile(_CHANNEL + rb"/([^/]+)$"), MESSAGE_UPDATE, "PATCH"),
    (re.compile(_CHANNEL + rb"/([^/]+)/softDelete$"), MESSAGE_SOFT_DELETE, "POST"),
    (re.compile(rb"^/v1\.0/me/joinedTeams$"), JOINED_TEAMS, "GET"),
    (re.compile(rb"^/v1\.0/teams/([^/]+)/channels$"), LIST_CHANNELS, "GET"),
)
_DIRECTORY_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})
ACCEPTED_SCOPES = {
    CHATTHREADS: frozenset({DEFAULT_GRAPH_SCOPE}),
    # Least privilege: ChannelMessage.Send; Group.ReadWrite.All for backward compatibility.
    CHANNEL_MESSAGES: frozenset({CHANNEL_MESSAGE_SEND, DEFAULT_GRAPH_SCOPE}),
    # Update chatMessage, delegated: ChannelMessage.ReadWrite, Group.ReadWrite.All (backward
    # compatibility). softDelete, delegated: ChannelMessage.ReadWrite only.
    MESSAGE_UPDATE: frozenset({CHANNEL_MESSAGE_READ_WRITE, DEFAULT_GRAPH_SCOPE}),
    MESSAGE_SOFT_DELETE: frozenset({CHANNEL_MESSAGE_READ_WRITE}),
    # List joinedTeams, delegated: Team.ReadBasic.All, then the higher privileged ones.
    JOINED_TEAMS: frozenset(
        {
            TEAM_READ_BASIC_ALL,
            "TeamSettings.Read.All",
            "TeamSettings.ReadWrite.All",
            "User.Read.All",
            "User.ReadWrite.All",
            *_DIRECTORY_READ,
        }
    ),
    # List channels, delegated: Channel.ReadBasic.All, then the higher privileged ones.
    LIST_CHANNELS: frozenset(
        {
            CHANNEL_READ_BASIC_ALL,
            "ChannelSettings.Read.All",
            "ChannelSettings.ReadWrite.All",
            "Group.Read.All",
            DEFAULT_GRAPH_SCOPE,
            *_DIRECTORY_READ,
        }
    ),
}
"""The delegated permissions each endpoint accepts; a token needs one of them."""


@dataclass(frozen=True, slots=True)
class GraphTarget:
    endpoint: str
    """One of the endpoint names of :mod:`simulator.posts` (``CHATTHREADS``, ...)."""
    group_id: str
    """The team (group); empty for ``/me/joinedTeams``."""
    channel_id: str
    """Empty for the URLs that name no channel."""
    message_id: str | None = None
    """For the URLs of one message (update, softDelete)."""

    @property
    def accepted_scopes(self) -> frozenset[str]:
        return ACCEPTED_SCOPES[self.endpoint]


def _path_segment(raw: bytes) -> str:
    """Percent-decode a path segment exactly once (a channel id arrives as ``19%3A...``)."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("The path is not valid percent-encoded UTF-8.") from exc


def _match(raw_path: bytes) -> tuple[re.Match[bytes], str, str]:
    for pattern, endpoint, method in _ENDPOINTS:
        match = pattern.match(raw_path)
        if match is not None:
            return match, endpoint, method
    segment = _path_segment(raw_path.rstrip(b"/").rsplit(b"/", 1)[-1])
    raise bad_request(f"Resource not found for the segment '{segment}'.")


def graph_target(raw_path: bytes, method: str) -> GraphTarget:
    """The endpoint, team and channel a URL names, or the error Graph gives for the URL."""
    match, endpoint, allowed = _match(raw_path)
    if method != allowed:
        raise GraphError(
            405,
            "Request_BadRequest",
            f"The HTTP method '{method}' is not allowed; use {allowed}.",
        )
    segments = [_path_segment(raw) for raw in match.groups()]
    if not segments:
        return GraphTarget(endpoint, "", "")
    group_id = segments[0]
    if not is_guid(group_id):
        raise bad_request(f"Invalid object identifier '{group_id}'.")
    channel_id = segments[1] if len(segments) > 1 else ""
    message_id = segments[2] if len(segments) > 2 else None
    return GraphTarget(endpoint, group_id.lower(), channel_id, message_id)
