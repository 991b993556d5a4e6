"""Minting the token endpoint's answer: access token, ID token, client_info.

Access tokens look like the v1 tokens Entra ID issues for Microsoft Graph. Each carries a
serial number inside its ``uti`` claim so that revoking a tenant can invalidate exactly the
tokens issued before the revocation, however close in time the next sign-in comes.
"""

from __future__ import annotations

import base64
import json
import secrets

import jwt

from simulator.clock import Clock
from simulator.issued import IssuedTokens
from simulator.keys import SigningKey
from simulator.scopes import ScopeGrant
from simulator.sessions import Session

GRAPH_AUDIENCE = "https://graph.microsoft.com"
ID_TOKEN_LIFETIME = 3600


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encode_uti(serial: int) -> str:
    return b64url(serial.to_bytes(8, "big") + secrets.token_bytes(8))


def decode_uti(uti: str) -> int:
    """The serial inside ``uti``; ValueError when it is not one of ours."""
    raw = base64.urlsafe_b64decode(uti + "=" * (-len(uti) % 4))
    if len(raw) != 16:
        raise ValueError("not a simulator uti")
    return int.from_bytes(raw[:8], "big")


class TokenMinter:
    def __init__(
        self, key: SigningKey, lifetime: int, clock: Clock, issued: IssuedTokens | None = None
    ) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock
        self._issued = issued if issued is not None else IssuedTokens()
        self.next_serial = 1
        """Serial of the next access token; every token issued so far has a smaller one."""

    def token_response(
        self,
        session: Session,
        scopes: ScopeGrant,
        *,
        refresh_token: str | None,
        issuer_base: str,
        client_info: bool,
    ) -> dict[str, object]:
        now = int(self._clock())
        response: dict[str, object] = {
            "token_type": "Bearer",
            "scope": scopes.response_scope(),
            "expires_in": self._lifetime,
            "ext_expires_in": self._lifetime,
            "access_token": self._access_token(session, scopes, now),
        }
        if refresh_token is not None:
            response["refresh_token"] = refresh_token
        if scopes.wants_id_token:
            response["id_token"] = self._id_token(session, now, issuer_base)
        if client_info:
            response["client_info"] = b64url(
                json.dumps({"uid": session.user.oid, "utid": session.tenant_id}).encode()
            )
        return response

    def _sign(self, claims: dict[str, object]) -> str:
        headers = {"typ": "JWT", "kid": self._key.kid, "x5t": self._key.kid}
        return jwt.encode(claims, self._key.private_key, algorithm="RS256", headers=headers)

    def _access_token(self, session: Session, scopes: ScopeGrant, now: int) -> str:
        serial = self.next_serial
        self.next_serial += 1
        user = session.user
        token = self._sign(
            {
                "aud": GRAPH_AUDIENCE,
                "iss": f"https://sts.windows.net/{session.tenant_id}/",
                "iat": now,
                "nbf": now,
                "exp": now + self._lifetime,
                "appid": session.client_id,
                "appidacr": "0",
                "idtyp": "user",
                "name": user.name,
                "oid": user.oid,
                "scp": " ".join(scopes.graph),
                "sub": user.oid,
                "tid": session.tenant_id,
                "unique_name": user.upn,
                "upn": user.upn,
                "preferred_username": user.upn,
                "uti": encode_uti(serial),
                "ver": "1.0",
            }
        )
        self._issued.access_token(session.tenant_id, token)
        return token

    def _id_token(self, session: Session, now: int, issuer_base: str) -> str:
        user = session.user
        return self._sign(
            {
                "aud": session.client_id,
                "iss": f"{issuer_base}/{session.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + ID_TOKEN_LIFETIME,
                "name": user.name,
                "oid": user.oid,
                "preferred_username": user.upn,
                "sub": user.oid,
                "tid": session.tenant_id,
                "ver": "2.0",
            }
        )
