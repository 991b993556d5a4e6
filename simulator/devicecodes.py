"""Device codes (RFC 8628): issued per tenant, approved automatically, redeemable once."""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass

from simulator.clock import Clock
from simulator.errors import IdentityError
from simulator.scopes import ScopeGrant

DEVICE_CODE_LIFETIME = 900
POLL_INTERVAL = 1
"""Seconds MSAL waits between polls; the identity platform says 5, 1 keeps rehearsals quick."""
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_USER_CODE_LENGTH = 9


@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_code: str
    user_code: str
    tenant_id: str
    client_id: str
    scopes: ScopeGrant
    issued_at: float
    approves_at: float
    expires_at: float


def _user_code() -> str:
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(_USER_CODE_LENGTH))


def _invalid_device_code(reason: str) -> IdentityError:
    return IdentityError(
        "invalid_grant", 70000, f"The provided value for 'device_code' is not valid: {reason}."
    )


class DeviceCodeStore:
    """Outstanding device codes. Nobody types codes in here: a code is approved on its own
    ``approve_delay`` seconds after it was issued, which is what a quick user would do."""

    def __init__(self, approve_delay: float, clock: Clock) -> None:
        self.approve_delay = approve_delay
        self.poll_interval = POLL_INTERVAL
        self._clock = clock
        self._codes: dict[str, DeviceCode] = {}
        self._by_expiry: deque[DeviceCode] = deque()

    def issue(self, tenant_id: str, client_id: str, scopes: ScopeGrant) -> DeviceCode:
        now = self._clock()
        self._purge(now)
        code = DeviceCode(
            device_code=secrets.token_urlsafe(48),
            user_code=_user_code(),
            tenant_id=tenant_id,
            client_id=client_id,
            scopes=scopes,
            issued_at=now,
            approves_at=now + self.approve_delay,
            expires_at=now + DEVICE_CODE_LIFETIME,
        )
        self._codes[code.device_code] = code
        self._by_expiry.append(code)
        return code

    def redeem(self, device_code: str, tenant_id: str, client_id: str) -> DeviceCode:
        """Return the approved code and forget it; raise the answer a poll gets otherwise."""
        code = self._codes.get(device_code)
        if code is None:
            raise _invalid_device_code("it is unknown or was already redeemed")
        if code.tenant_id != tenant_id or code.client_id != client_id:
            raise _invalid_device_code("it was issued to another tenant or client_id")
        now = self._clock()
        if now >= code.expires_at:
            del self._codes[device_code]
            raise IdentityError("expired_token", 70019, "Verification code expired.")
        if now < code.approves_at:
            raise IdentityError(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        del self._codes[device_code]
        return code

    def __len__(self) -> int:
        return len(self._codes)

    def _purge(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0].expires_at <= now:
            expired = self._by_expiry.popleft()
            self._codes.pop(expired.device_code, None)
