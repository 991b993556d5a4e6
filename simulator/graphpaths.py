"""Which Graph resource a URL names: the two endpoints that post a message into a channel.

* ``/beta/groups/{group-id}/channels/{channel-id}/chatthreads`` (the one threadcast uses)
* ``/v1.0/teams/{team-id}/channels/{channel-id}/messages``

A team's id is its group's id, so both name the same team (and the same throttling scope).
Any other URL below a Graph version gets the error Graph gives for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from simulator.errors import GraphError
from simulator.payload import bad_request
from simulator.posts import CHANNEL_MESSAGES, CHATTHREADS
from simulator.scopes import CHANNEL_MESSAGE_SEND, DEFAULT_GRAPH_SCOPE
from simulator.tenants import is_guid

_ENDPOINTS = (
    (re.compile(rb"^/beta/groups/([^/]+)/channels/([^/]+)/chatthreads$"), CHATTHREADS),
    (re.compile(rb"^/v1\.0/teams/([^/]+)/channels/([^/]+)/messages$"), CHANNEL_MESSAGES),
)
ACCEPTED_SCOPES = {
    CHATTHREADS: frozenset({DEFAULT_GRAPH_SCOPE}),
    # Least privilege: ChannelMessage.Send; Group.ReadWrite.All for backward compatibility.
    CHANNEL_MESSAGES: frozenset({CHANNEL_MESSAGE_SEND, DEFAULT_GRAPH_SCOPE}),
}
"""The delegated permissions each endpoint accepts; a token needs one of them."""


@dataclass(frozen=True, slots=True)
class GraphTarget:
    endpoint: str
    """:data:`~simulator.posts.CHATTHREADS` or :data:`~simulator.posts.CHANNEL_MESSAGES`."""
    group_id: str
    channel_id: str

    @property
    def accepted_scopes(self) -> frozenset[str]:
        return ACCEPTED_SCOPES[self.endpoint]


def _path_segment(raw: bytes) -> str:
    """Percent-decode a path segment exactly once (a channel id arrives as ``19%3A...``)."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("The path is not valid percent-encoded UTF-8.") from exc


def _match(raw_path: bytes) -> tuple[re.Match[bytes], str]:
    for pattern, endpoint in _ENDPOINTS:
        match = pattern.match(raw_path)
        if match is not None:
            return match, endpoint
    segment = _path_segment(raw_path.rstrip(b"/").rsplit(b"/", 1)[-1])
    raise bad_request(f"Resource not found for the segment '{segment}'.")


def graph_target(raw_path: bytes, method: str) -> GraphTarget:
    """The endpoint, team and channel a URL names, or the error Graph gives for the URL."""
    match, endpoint = _match(raw_path)
    if method != "POST":
        raise GraphError(
            405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed; use POST."
        )
    group_id, channel_id = _path_segment(match[1]), _path_segment(match[2])
    if not is_guid(group_id):
        raise bad_request(f"Invalid object identifier '{group_id}'.")
    return GraphTarget(endpoint, group_id.lower(), channel_id)
