"""Identifiers: validation of Microsoft ids and the deterministic delivery id."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable

from threadcast.errors import ValidationError

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Teams channel ids look like 19:<token>@thread.tacv2 (or the older @thread.skype). The token
# is restricted to characters that can never change the meaning of a URL path: no "/", "?",
# "#", "%" and no empty or ".." segments, so nothing smuggled in can leave the channel's path.
_CHANNEL = re.compile(r"^19:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*@thread\.(?:tacv2|skype)$")
_BROADCAST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_:-]|\.(?!\.)){0,127}$")
MAX_CHANNEL_LENGTH = 256
_EXAMPLE_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

#: Delivery ids are UUIDv5 in this namespace, of "broadcast\x1ftenant\x1fgroup\x1fchannel":
#: fixed, so that they are the same on every machine and every release.
DELIVERY_NAMESPACE = uuid.UUID("6d1c3a52-3f55-4c39-9a0e-4f1e1f6c7a10")


def guid(field: str, value: object) -> str:
    """Return ``value`` as a lower-case GUID or raise naming ``field``."""
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise ValidationError(field, value, f"must be a GUID like {_EXAMPLE_GUID}")
    return value.lower()


def channel_id(field: str, value: object) -> str:
    """Return a Teams channel id unchanged, or raise naming ``field``."""
    # fullmatch in every check here: a pattern's $ also matches before a final newline.
    if (
        not isinstance(value, str)
        or len(value) > MAX_CHANNEL_LENGTH
        or not _CHANNEL.fullmatch(value)
    ):
        raise ValidationError(
            field, value, "must be a Teams channel id like 19:abc123@thread.tacv2 or …@thread.skype"
        )
    return value


def broadcast_id(field: str, value: object) -> str:
    """Return a caller-chosen broadcast id, or raise naming ``field``."""
    if not isinstance(value, str) or not _BROADCAST.fullmatch(value):
        raise ValidationError(
            field, value, "must be 1-128 characters of letters, digits, '_', '-', ':' or '.'"
        )
    return value


def new_broadcast_id() -> str:
    """A fresh broadcast id for callers that did not choose one."""
    return str(uuid.uuid4())


def delivery_ids(broadcast: str) -> Callable[[str, str, str], str]:
    """The delivery id maker for one broadcast: (tenant, group, channel) -> id. The same
    inputs give the same id, so re-sending creates nothing new.

    The id is the UUIDv5 (SHA-1 of namespace and name, version and variant bits set) computed
    without a UUID object per id, and with the namespace and broadcast hashed once.
    """
    name = DELIVERY_NAMESPACE.bytes + broadcast.encode() + b"\x1f"
    prefix = hashlib.sha1(name, usedforsecurity=False)  # UUIDv5 is SHA-1 by definition

    def make(tenant: str, group: str, channel: str) -> str:
        digest = prefix.copy()
        digest.update(f"{tenant}\x1f{group}\x1f{channel}".encode())
        raw = bytearray(digest.digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return make


def valid_target(tenant: object, group: object, channel: object) -> tuple[str, str, str] | None:
    """(tenant, group, channel) as ``guid`` and ``channel_id`` return them when all three
    are valid, else None (then those functions name the problem). No error text is built
    for the valid ones, which is what a 100,000-target broadcast is made of."""
    if (
        isinstance(tenant, str)
        and _GUID.fullmatch(tenant)
        and isinstance(group, str)
        and _GUID.fullmatch(group)
        and isinstance(channel, str)
        and len(channel) <= MAX_CHANNEL_LENGTH
        and _CHANNEL.fullmatch(channel)
    ):
        return tenant.lower(), group.lower(), channel
    return None


def new_request_id() -> str:
    """A ``client-request-id`` GUID for one HTTP attempt."""
    return str(uuid.uuid4())
