"""API keys of the HTTP API: ``THREADCAST_API_KEYS`` parsed, and a presented key checked.

The setting is ``name:key,name:key``. A key may also be given as its SHA-256 hash,
``name:sha256:<64 hex digits>``, so the plain key need not sit in the environment. Every
key is kept only as its hash, and a presented key is hashed and compared with all of them in
constant time: neither a key nor how much of it matched leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

HASH_PREFIX = "sha256:"
MIN_KEY_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One caller: its name (recorded as the source of its broadcasts) and its key's hash."""

    name: str
    digest: bytes

    def __repr__(self) -> str:  # the hash is not a secret, but it need not be printed either
        return f"ApiKey(name={self.name!r})"


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
    name, colon, key = entry.partition(":")
    where = f"entry {position + 1}"
    if not colon or not _NAME.match(name):
        raise ValueError(
            f"{where} must be name:key, the name 1-64 letters, digits, '_', '.' or '-'"
        )
    if key.startswith(HASH_PREFIX):
        hexdigest = key.removeprefix(HASH_PREFIX)
        if not _HEX_DIGEST.match(hexdigest):
            raise ValueError(f"{where} ({name}): a sha256: key must be 64 hex digits")
        return ApiKey(name, bytes.fromhex(hexdigest))
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"{where} ({name}): the key must be at least {MIN_KEY_LENGTH} characters")
    return ApiKey(name, digest(key))


def identify(keys: tuple[ApiKey, ...], presented: str) -> str | None:
    """The name of the key ``presented`` is, or None. Every key is compared, whatever matches."""
    wanted = digest(presented)
    found: str | None = None
    for key in keys:
        if hmac.compare_digest(key.digest, wanted):
            found = key.name
    return found
