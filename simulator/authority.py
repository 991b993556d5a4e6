"""The identity platform itself, without HTTP: device authorization, the token endpoint's
grants, revocation. Errors are raised as :class:`~simulator.errors.IdentityError`."""

from __future__ import annotations

from collections.abc import Mapping

from simulator.errors import IdentityError
from simulator.scopes import parse_scopes
from simulator.sessions import Session
from simulator.state import SimState
from simulator.tenants import TenantRef, user_for
from simulator.tokens import TokenMinter
from simulator.verify import AccessTokenVerifier

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_GRANT_NAMES = {DEVICE_CODE_GRANT: "device_code"}


def required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise IdentityError(
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
        )
    return value


class Authority:
    def __init__(self, state: SimState, minter: TokenMinter, verifier: AccessTokenVerifier) -> None:
        self._state = state
        self._minter = minter
        self._verifier = verifier

    def authorize_device(
        self, tenant: TenantRef, form: Mapping[str, str], base_url: str
    ) -> dict[str, object]:
        """The device authorization endpoint's answer (RFC 8628 section 3.2)."""
        scopes = parse_scopes(required(form, "scope"))
        code = self._state.device_codes.issue(tenant.tenant_id, required(form, "client_id"), scopes)
        verification_uri = f"{base_url}/devicelogin"
        return {
            "user_code": code.user_code,
            "device_code": code.device_code,
            "verification_uri": verification_uri,
            "expires_in": int(code.expires_at - code.issued_at),
            "interval": self._state.device_codes.poll_interval,
            "message": (
                f"To sign in, use a web browser to open the page {verification_uri} and enter "
                f"the code {code.user_code} to authenticate."
            ),
        }

    def exchange(
        self, tenant: TenantRef, form: Mapping[str, str], base_url: str
    ) -> dict[str, object]:
        """The token endpoint's answer; counts every call and every invalid_grant."""
        grant_type = required(form, "grant_type")
        counters = self._state.counters
        counters.token_call(tenant.segment, _GRANT_NAMES.get(grant_type, grant_type))
        if form.get("client_secret"):
            # Accepted unchecked, but counted: a rehearsal can tell a confidential client's
            # calls from a public one's.
            counters.token_call(tenant.segment, "with_client_secret")
        try:
            return self._grant(grant_type, tenant, form, base_url)
        except IdentityError as exc:
            if exc.error == "invalid_grant":
                counters.invalid_grant(tenant.segment)
            raise

    def revoke_tenant(self, tenant_id: str, *, access_tokens_only: bool = False) -> int:
        """Revoke the tenant's refresh and access tokens; return how many refresh tokens.

        ``access_tokens_only`` invalidates the access tokens issued so far and leaves the
        sign-in alive: Graph answers 401 to them, but a refresh still succeeds (as after a
        Graph-side token invalidation), which is how a client's 401 -> refresh -> retry path
        is rehearsed.
        """
        self._verifier.revoke_tenant(tenant_id, below_serial=self._minter.next_serial)
        if access_tokens_only:
            return 0
        return self._state.sessions.revoke_tenant(tenant_id)

    def _grant(
        self, grant_type: str, tenant: TenantRef, form: Mapping[str, str], base_url: str
    ) -> dict[str, object]:
        if grant_type == DEVICE_CODE_GRANT:
            return self._redeem_device_code(tenant, form, base_url)
        if grant_type == "refresh_token":
            return self._refresh(tenant, form, base_url)
        raise IdentityError(
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'. The simulator supports "
            f"'{DEVICE_CODE_GRANT}' and 'refresh_token'.",
        )

    def _redeem_device_code(
        self, tenant: TenantRef, form: Mapping[str, str], base_url: str
    ) -> dict[str, object]:
        client_id = required(form, "client_id")
        code = self._state.device_codes.redeem(
            required(form, "device_code"), tenant.tenant_id, client_id
        )
        session = Session(code.tenant_id, client_id, user_for(code.tenant_id), code.scopes)
        # As on the real service, only offline_access earns a refresh token.
        refresh_token = (
            self._state.sessions.start(session) if code.scopes.wants_refresh_token else None
        )
        return self._minter.token_response(
            session,
            self._state.directory.consent.consented(session.tenant_id, code.scopes),
            refresh_token=refresh_token,
            issuer_base=base_url,
            client_info=form.get("client_info") == "1",
        )

    def _refresh(
        self, tenant: TenantRef, form: Mapping[str, str], base_url: str
    ) -> dict[str, object]:
        session, refresh_token = self._state.sessions.rotate(
            required(form, "refresh_token"),
            required(form, "client_id"),
            None if tenant.is_multi_tenant else tenant.tenant_id,
        )
        scope = form.get("scope")
        # The session keeps what was asked for, so consent granted again shows up on the next
        # refresh; each token carries only what the tenant consents to when it is minted.
        wanted = parse_scopes(scope) if scope else session.scopes
        return self._minter.token_response(
            session,
            self._state.directory.consent.consented(session.tenant_id, wanted),
            refresh_token=refresh_token,
            issuer_base=base_url,
            client_info=form.get("client_info") == "1",
        )
