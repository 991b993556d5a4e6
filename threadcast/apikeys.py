"""API keys of the HTTP API: ``THREADCAST_API_KEYS`` parsed, and a presented key checked.

The setting is ``name:key,name:key``. A key may also be given as its SHA-256 hash,
``name:sha256:<64 hex digits>``, so the plain key need not sit in the environment. Every
key is kept only as its hash, and a presented key is hashed and compared with all of them in
constant time: neither a key nor how much of it matched leaks through timing.

A key sees only the broadcasts it sent (their source is its name). ``operator@name:key``
makes it an operator key, which sees every broadcast. The role goes before the name because
a name never holds ``@`` (so no entry that was valid before changes meaning), while a key may
hold anything, ``:`` included (``sha256:<hex>``, or ``…:operator`` in a plain key).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

HASH_PREFIX = "sha256:"
OPERATOR = "operator"  # the one role: ``operator@name:key``
MIN_KEY_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One caller: its name (recorded as the source of its broadcasts), its key's hash, and
    whether it is an operator's (sees every broadcast, not only its own)."""

    name: str
    digest: bytes
    operator: bool = False

    def __repr__(self) -> str:  # the hash is not a secret, but it need not be printed either
        return f"ApiKey(name={self.name!r}, operator={self.operator})"

    def owns(self, source: str) -> bool:
        """Whether a broadcast recorded with ``source`` is this caller's to see and act on."""
        return self.operator or source == self.name


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """``name:key,…`` as ApiKeys; a ValueError (never echoing a key) says what is wrong."""
    keys: list[ApiKey] = []
    for position, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        keys.append(_parse_entry(position, entry))
    if not keys:
        raise ValueError("must hold at least one name:key entry")
    names = [k.name for k in keys]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(keys)


def _parse_entry(position: int, entry: str) -> ApiKey:
    head, colon, key = entry.partition(":")
    role, at, name = head.rpartition("@")
    where = f"entry {position + 1}"
    if not colon or not _NAME.fullmatch(name):
        raise ValueError(
            f"{where} must be name:key or {OPERATOR}@name:key, the name 1-64 letters, "
            "digits, '_', '.' or '-'"
        )
    if at and role != OPERATOR:
        raise ValueError(f"{where} ({name}): the role before '@' can only be '{OPERATOR}'")
    return ApiKey(name, _key_digest(where, name, key), operator=bool(at))


def _key_digest(where: str, name: str, key: str) -> bytes:
    if key.startswith(HASH_PREFIX):
        hexdigest = key.removeprefix(HASH_PREFIX)
        if not _HEX_DIGEST.fullmatch(hexdigest):
            raise ValueError(f"{where} ({name}): a sha256: key must be 64 hex digits")
        return bytes.fromhex(hexdigest)
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"{where} ({name}): the key must be at least {MIN_KEY_LENGTH} characters")
    return digest(key)


def identify(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    """The key ``presented`` is, or None. Every key is compared, whatever matches."""
    wanted = digest(presented)
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(key.digest, wanted):
            found = key
    return found
