"""Access tokens: minted as Graph v1 tokens, verified from a cache, revocable per tenant."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import jwt
import pytest

from simulator.directory import Consent
from simulator.errors import GraphError
from simulator.graphpaths import ACCEPTED_SCOPES
from simulator.keys import SigningKey
from simulator.posts import CHANNEL_MESSAGES, CHATTHREADS
from simulator.scopes import parse_scopes
from simulator.sessions import Session
from simulator.tenants import user_for
from simulator.tokens import TokenMinter, decode_uti, encode_uti
from simulator.verify import AccessTokenVerifier

TENANT = "0b7d3f2a-5c1e-4a8b-9d6f-1e2a3b4c5d6e"
CHATTHREADS_SCOPES = ACCEPTED_SCOPES[CHATTHREADS]
MESSAGES_SCOPES = ACCEPTED_SCOPES[CHANNEL_MESSAGES]
KEY = SigningKey.generate()


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _mint(
    clock: FakeClock, scope: str = "Group.ReadWrite.All openid offline_access"
) -> dict[str, object]:
    minter = TokenMinter(KEY, lifetime=60, clock=clock)
    session = Session(TENANT, "client-a", user_for(TENANT), parse_scopes(scope))
    return minter.token_response(
        session, session.scopes, refresh_token="0.Ax", issuer_base="https://h:1", client_info=True
    )


def _unauthorized(
    verifier: AccessTokenVerifier,
    header: str | None,
    accepted: frozenset[str] = CHATTHREADS_SCOPES,
) -> GraphError:
    with pytest.raises(GraphError) as caught:
        verifier.authorize(header, accepted)
    return caught.value


def test_the_token_response_has_what_msal_needs() -> None:
    response = _mint(FakeClock())
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == 60
    assert response["scope"] == "Group.ReadWrite.All openid"
    raw_info = str(response["client_info"])
    client_info = json.loads(base64.urlsafe_b64decode(raw_info + "=" * (-len(raw_info) % 4)))
    assert client_info == {"uid": user_for(TENANT).oid, "utid": TENANT}
    id_claims = jwt.decode(str(response["id_token"]), options={"verify_signature": False})
    assert (id_claims["aud"], id_claims["iss"]) == ("client-a", f"https://h:1/{TENANT}/v2.0")


def test_access_token_claims() -> None:
    token = str(_mint(FakeClock())["access_token"])
    claims = jwt.decode(
        token,
        KEY.public_key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert (claims["tid"], claims["scp"], claims["appid"]) == (
        TENANT,
        "Group.ReadWrite.All",
        "client-a",
    )
    assert claims["upn"] == "admin@0b7d3f2a.onmicrosoft.test"
    assert claims["exp"] - claims["iat"] == 60


def test_a_valid_token_is_authorized_until_it_expires() -> None:
    clock = FakeClock()
    verifier = AccessTokenVerifier(KEY, clock)
    header = f"Bearer {_mint(clock)['access_token']}"
    for _ in range(2):  # the second is served from the cache
        assert verifier.authorize(header, CHATTHREADS_SCOPES).tenant_id == TENANT
    clock.now += 60
    assert "expired" in _unauthorized(verifier, header).message


def test_revocation_covers_tokens_issued_before_it_only() -> None:
    clock = FakeClock()
    verifier = AccessTokenVerifier(KEY, clock)
    minter = TokenMinter(KEY, lifetime=60, clock=clock)
    session = Session(TENANT, "c", user_for(TENANT), parse_scopes("Group.ReadWrite.All"))

    def token() -> str:
        response = minter.token_response(
            session, session.scopes, refresh_token=None, issuer_base="https://h", client_info=False
        )
        return f"Bearer {response['access_token']}"

    before = token()
    verifier.authorize(before, CHATTHREADS_SCOPES)
    verifier.revoke_tenant(TENANT, below_serial=minter.next_serial)
    after = token()  # same second as the revocation, still valid
    assert "TokenIssuedBeforeRevocationTimestamp" in _unauthorized(verifier, before).message
    assert verifier.authorize(after, CHATTHREADS_SCOPES).tenant_id == TENANT


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Access token is empty."),
        ("", "Access token is empty."),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer ", "Bearer"),
        ("Bearer not-a-jwt", "CompactToken parsing failed"),
    ],
)
def test_malformed_headers_are_401(header: str | None, message: str) -> None:
    error = _unauthorized(AccessTokenVerifier(KEY, FakeClock()), header)
    assert (error.status, error.code) == (401, "InvalidAuthenticationToken")
    assert message in error.message
    assert error.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_token_signed_by_another_key_is_401() -> None:
    clock = FakeClock()
    foreign = TokenMinter(SigningKey.generate(), lifetime=60, clock=clock)
    session = Session(TENANT, "c", user_for(TENANT), parse_scopes("Group.ReadWrite.All"))
    response = foreign.token_response(
        session, session.scopes, refresh_token=None, issuer_base="https://h", client_info=False
    )
    error = _unauthorized(AccessTokenVerifier(KEY, clock), f"Bearer {response['access_token']}")
    assert "Invalid signature" in error.message


def test_a_token_for_another_audience_is_401() -> None:
    clock = FakeClock()
    claims = {
        "aud": "api://other",
        "tid": TENANT,
        "iat": 1,
        "exp": int(clock.now) + 60,
        "uti": encode_uti(1),
        "scp": "Group.ReadWrite.All",
    }
    token = jwt.encode(claims, KEY.private_key, algorithm="RS256")
    assert (
        "Invalid audience"
        in _unauthorized(AccessTokenVerifier(KEY, clock), f"Bearer {token}").message
    )


def test_a_token_without_group_readwrite_all_is_403() -> None:
    clock = FakeClock()
    token = _mint(clock, scope="User.Read openid")["access_token"]
    error = _unauthorized(AccessTokenVerifier(KEY, clock), f"Bearer {token}")
    assert (error.status, error.code) == (403, "Forbidden")
    assert error.message == (
        "Missing scope permissions on the request. API requires one of "
        "'Group.ReadWrite.All'. Scopes on the request 'User.Read'"
    )


def _bearer(clock: FakeClock, scope: str) -> str:
    return f"Bearer {_mint(clock, scope=scope)['access_token']}"


def test_each_endpoint_accepts_its_own_permissions() -> None:
    clock = FakeClock()
    verifier = AccessTokenVerifier(KEY, clock)
    send_only = _bearer(clock, "ChannelMessage.Send openid")
    assert verifier.authorize(send_only, MESSAGES_SCOPES).tenant_id == TENANT
    # chatthreads knows only Group.ReadWrite.All: least privilege does not reach it.
    error = _unauthorized(verifier, send_only, CHATTHREADS_SCOPES)
    assert error.message == (
        "Missing scope permissions on the request. API requires one of "
        "'Group.ReadWrite.All'. Scopes on the request 'ChannelMessage.Send'"
    )
    read_only = _bearer(clock, "User.Read Group.Read.All")
    error = _unauthorized(verifier, read_only, MESSAGES_SCOPES)
    assert error.message == (
        "Missing scope permissions on the request. API requires one of "
        "'ChannelMessage.Send, Group.ReadWrite.All'. Scopes on the request "
        "'Group.Read.All User.Read'"
    )
    both = _bearer(clock, "Group.ReadWrite.All")  # serves both endpoints
    assert verifier.authorize(both, MESSAGES_SCOPES).tenant_id == TENANT


def test_a_withdrawn_consent_takes_effect_on_tokens_already_issued() -> None:
    clock = FakeClock()
    consent = Consent()
    verifier = AccessTokenVerifier(KEY, clock, consent)
    header = _bearer(clock, "Group.ReadWrite.All ChannelMessage.Send")
    assert verifier.authorize(header, CHATTHREADS_SCOPES).tenant_id == TENANT
    consent.change(TENANT, revoke=["group.readwrite.all"], grant=[])  # any case
    error = _unauthorized(verifier, header)
    assert (error.status, error.code) == (403, "Forbidden")
    assert error.message.endswith("Scopes on the request 'ChannelMessage.Send'")
    assert verifier.authorize(header, MESSAGES_SCOPES).tenant_id == TENANT  # still has Send
    consent.change(TENANT, revoke=["ChannelMessage.Send"], grant=["Group.ReadWrite.All"])
    assert verifier.authorize(header, CHATTHREADS_SCOPES).tenant_id == TENANT
    # Send withdrawn, but Group.ReadWrite.All is accepted by channel messages too.
    assert verifier.authorize(header, MESSAGES_SCOPES).tenant_id == TENANT


def test_new_tokens_carry_only_the_consented_permissions() -> None:
    consent = Consent()
    asked = parse_scopes("Group.ReadWrite.All ChannelMessage.Send offline_access openid")
    assert consent.consented(TENANT, asked) is asked
    consent.change(TENANT, revoke=["Group.ReadWrite.All"], grant=[])
    assert consent.consented(TENANT, asked).graph == ("ChannelMessage.Send",)
    assert consent.consented("another-tenant", asked) is asked
    consent.change(TENANT, revoke=["ChannelMessage.Send"], grant=[])
    nothing = consent.consented(TENANT, asked)
    assert (nothing.graph, nothing.response_scope()) == ((), "openid")
    assert nothing.wants_refresh_token  # the sign-in itself goes on
    assert consent.withdrawn_names(TENANT) == ["ChannelMessage.Send", "Group.ReadWrite.All"]
    consent.change(TENANT, revoke=[], grant=["channelmessage.send"])
    assert consent.consented(TENANT, asked).graph == ("ChannelMessage.Send",)


def test_uti_round_trip() -> None:
    assert decode_uti(encode_uti(12345)) == 12345
    with pytest.raises(ValueError, match="simulator"):
        decode_uti("abcd")
