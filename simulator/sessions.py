"""Sign-in sessions and their rotating refresh tokens.

Every successful refresh returns a new refresh token and retires the one presented; a retired
token still works for ``grace`` seconds (0 by default, as strict as the real service gets),
so a worker that refreshes with a stale copy of a shared cache sees ``invalid_grant``.
Retired and revoked tokens are remembered for a while only to tell the caller *why* its token
was refused: the answer is the same ``invalid_grant`` either way.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from typing import Literal

from simulator.clock import Clock
from simulator.errors import IdentityError
from simulator.issued import IssuedTokens
from simulator.scopes import ScopeGrant
from simulator.tenants import SimUser

_MEMORY_SECONDS = 3600.0
_State = Literal["current", "retired", "revoked"]


@dataclass(frozen=True, slots=True)
class Session:
    """One user's sign-in to one tenant with one client application."""

    tenant_id: str
    client_id: str
    user: SimUser
    scopes: ScopeGrant


@dataclass(slots=True)
class _RefreshToken:
    session: Session
    state: _State = "current"
    changed_at: float = 0.0


def _invalid_grant(reason: str) -> IdentityError:
    return IdentityError(
        "invalid_grant", 70000, f"Provided grant is invalid or malformed: {reason}."
    )


def new_refresh_token() -> str:
    return "0.A" + secrets.token_urlsafe(96)


class SessionStore:
    def __init__(self, grace: float, clock: Clock, issued: IssuedTokens | None = None) -> None:
        self.grace = grace
        self._clock = clock
        self._issued = issued if issued is not None else IssuedTokens()
        self._tokens: dict[str, _RefreshToken] = {}
        self._ended: deque[tuple[float, str]] = deque()

    def start(self, session: Session) -> str:
        """Record a new sign-in and return its first refresh token."""
        token = new_refresh_token()
        self._tokens[token] = _RefreshToken(session)
        self._issued.refresh_token(session.tenant_id, token)
        return token

    def rotate(
        self, refresh_token: str, client_id: str, tenant_id: str | None
    ) -> tuple[Session, str]:
        """Redeem ``refresh_token``; ``tenant_id`` None means any (the ``common`` endpoint)."""
        now = self._clock()
        self._forget_old(now)
        record = self._usable(refresh_token, now)
        session = record.session
        if session.client_id != client_id:
            raise _invalid_grant("the refresh token was issued to a different client_id")
        if tenant_id is not None and session.tenant_id != tenant_id:
            raise _invalid_grant("the refresh token was issued by a different tenant")
        if record.state == "current":
            self._end(refresh_token, record, "retired", now)
        return session, self.start(session)

    def revoke_tenant(self, tenant_id: str) -> int:
        """Revoke every usable refresh token of the tenant; return how many there were."""
        now = self._clock()
        revoked = 0
        for token, record in self._tokens.items():
            if record.session.tenant_id != tenant_id or record.state == "revoked":
                continue
            if self._is_usable(record, now):
                revoked += 1
            self._end(token, record, "revoked", now)
        return revoked

    def _usable(self, refresh_token: str, now: float) -> _RefreshToken:
        record = self._tokens.get(refresh_token)
        if record is None:
            raise _invalid_grant("the refresh token is unknown")
        if record.state == "revoked":
            raise _invalid_grant("the refresh token was revoked")
        if not self._is_usable(record, now):
            raise _invalid_grant(
                "the refresh token was already redeemed and rotated out; refresh tokens "
                "rotate on every use, so present the newest one"
            )
        return record

    def _is_usable(self, record: _RefreshToken, now: float) -> bool:
        if record.state == "current":
            return True
        return record.state == "retired" and now < record.changed_at + self.grace

    def _end(self, token: str, record: _RefreshToken, state: _State, now: float) -> None:
        if record.state == "current":
            self._ended.append((now, token))
        record.state = state
        record.changed_at = now

    def _forget_old(self, now: float) -> None:
        horizon = now - max(_MEMORY_SECONDS, self.grace)
        while self._ended and self._ended[0][0] < horizon:
            _, token = self._ended.popleft()
            self._tokens.pop(token, None)
