"""Validating the bearer token of a Graph call, fast.

RSA verification costs far more than the rest of a Graph call, so a verified token's claims
are cached until the token expires; what can change in the meantime (a tenant revoked, a
tenant's consent withdrawn) is a dictionary lookup on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from simulator.clock import Clock
from simulator.directory import Consent, consented_scopes, missing_scope
from simulator.errors import GraphError
from simulator.keys import SigningKey
from simulator.tokens import GRAPH_AUDIENCE, decode_uti

ACCEPTED_AUDIENCES = [GRAPH_AUDIENCE, "00000003-0000-0000-c000-000000000000"]
_CACHE_LIMIT = 50_000
_CLOCK_SKEW_SECONDS = 300  # Entra ID's own tolerance
WWW_AUTHENTICATE = (
    'Bearer realm="", '
    'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid access token speaks for."""

    tenant_id: str
    client_id: str
    oid: str
    scopes: frozenset[str]
    expires_at: int
    serial: int


def unauthorized(message: str) -> GraphError:
    return GraphError(
        401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": WWW_AUTHENTICATE}
    )


def _principal(claims: dict[str, object]) -> Principal:
    try:
        return Principal(
            tenant_id=str(claims["tid"]),
            client_id=str(claims.get("appid", "")),
            oid=str(claims.get("oid", "")),
            scopes=frozenset(str(claims.get("scp", "")).split()),
            expires_at=int(str(claims["exp"])),
            serial=decode_uti(str(claims["uti"])),
        )
    except (KeyError, ValueError) as exc:
        raise unauthorized("Access token validation failure. Missing or invalid claims.") from exc


class AccessTokenVerifier:
    def __init__(self, key: SigningKey, clock: Clock, consent: Consent | None = None) -> None:
        self._public_key = key.public_key
        self._clock = clock
        self._consent = consent if consent is not None else Consent()
        self._cache: dict[str, Principal] = {}
        self._revoked_below: dict[str, int] = {}

    def revoke_tenant(self, tenant_id: str, below_serial: int) -> None:
        """Invalidate every access token of the tenant whose serial is below ``below_serial``."""
        self._revoked_below[tenant_id] = below_serial

    def authorize(self, authorization: str | None, accepted: frozenset[str]) -> Principal:
        """Check an ``Authorization`` header for a call that needs one of ``accepted``.

        The tenant's consent is checked as it is NOW, not as it was when the token was issued:
        a withdrawn permission stops working at once (Graph would honour the token until it
        expires; the simulator is stricter so that a rehearsal needs no hour-long wait).
        """
        principal = self.verify(_bearer_token(authorization))
        scopes = principal.scopes
        withdrawn = self._consent.withdrawn(principal.tenant_id)
        if withdrawn:
            scopes = consented_scopes(scopes, withdrawn)
        if scopes.isdisjoint(accepted):
            raise missing_scope(accepted, scopes)
        return principal

    def verify(self, token: str) -> Principal:
        principal = self._cache.get(token)
        if principal is None:
            principal = self._verify_signature(token)
            self._remember(token, principal)
        if self._clock() >= principal.expires_at:
            raise unauthorized("Lifetime validation failed, the token is expired.")
        if principal.serial < self._revoked_below.get(principal.tenant_id, 0):
            raise unauthorized(
                "Continuous access evaluation resulted in challenge with result: "
                "InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp"
            )
        return principal

    def _verify_signature(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                audience=ACCEPTED_AUDIENCES,
                # Time is checked against our clock, not PyJWT's, so tests can move it.
                options={
                    "require": ["exp", "iat", "tid", "uti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise unauthorized("Access token validation failure. Invalid audience.") from exc
        except jwt.InvalidSignatureError as exc:
            raise unauthorized("Access token validation failure. Invalid signature.") from exc
        except jwt.DecodeError as exc:
            raise unauthorized("CompactToken parsing failed with error code: 80049217") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"Access token validation failure. {exc}") from exc
        if float(claims.get("nbf", 0)) > self._clock() + _CLOCK_SKEW_SECONDS:
            raise unauthorized("Lifetime validation failed, the token is not yet valid.")
        return _principal(claims)

    def _remember(self, token: str, principal: Principal) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            now = self._clock()
            self._cache = {t: p for t, p in self._cache.items() if p.expires_at > now}
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
        self._cache[token] = principal


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthorized("Access token is empty.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Authorization header must be 'Bearer <access token>'.")
    return token.strip()
