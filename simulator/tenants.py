"""Tenants as they appear in authority URLs, and the one simulated user each tenant has."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from simulator.errors import IdentityError

_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations"})
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://threadcast.invalid/simulator")
HOME_TENANT = str(uuid.uuid5(_NAMESPACE, "home-tenant"))
"""The tenant a user signing in through ``common`` or ``organizations`` belongs to."""


@dataclass(frozen=True, slots=True)
class TenantRef:
    """The tenant segment of an authority URL, resolved."""

    segment: str
    """As requested: a lower-case GUID, ``common`` or ``organizations``."""
    tenant_id: str
    """The tenant tokens are issued for: the GUID itself, or :data:`HOME_TENANT`."""

    @property
    def is_multi_tenant(self) -> bool:
        return self.segment in MULTI_TENANT_SEGMENTS


@dataclass(frozen=True, slots=True)
class SimUser:
    """The administrator who signs in for a tenant; stable so MSAL keeps one account."""

    oid: str
    upn: str
    name: str


def is_guid(value: str) -> bool:
    return _GUID.match(value) is not None


def parse_tenant(segment: str) -> TenantRef:
    """Resolve a tenant path segment, answering garbage the way Entra ID does (AADSTS90002)."""
    lowered = segment.lower()
    if lowered in MULTI_TENANT_SEGMENTS:
        return TenantRef(lowered, HOME_TENANT)
    if is_guid(segment):
        return TenantRef(lowered, lowered)
    raise IdentityError(
        "invalid_tenant",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. The simulator accepts tenant GUIDs, 'common' "
        "and 'organizations'.",
    )


def user_for(tenant_id: str) -> SimUser:
    short = tenant_id[:8]
    return SimUser(
        oid=str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/admin")),
        upn=f"admin@{short}.onmicrosoft.test",
        name=f"Simulated Admin ({short})",
    )
