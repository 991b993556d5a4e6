"""Refresh tokens rotate: each use returns a new one and retires the old one (after a grace)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.errors import IdentityError
from simulator.scopes import parse_scopes
from simulator.sessions import Session, SessionStore
from simulator.tenants import user_for

TENANT = "0b7d3f2a-5c1e-4a8b-9d6f-1e2a3b4c5d6e"
OTHER_TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CLIENT = "client-a"


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(grace: float = 0.0) -> tuple[SessionStore, FakeClock, str]:
    clock = FakeClock()
    store = SessionStore(grace, clock)
    session = Session(TENANT, CLIENT, user_for(TENANT), parse_scopes("Group.ReadWrite.All"))
    return store, clock, store.start(session)


def _refused(store: SessionStore, token: str, client: str = CLIENT) -> str:
    with pytest.raises(IdentityError) as caught:
        store.rotate(token, client, TENANT)
    assert (caught.value.error, caught.value.aadsts) == ("invalid_grant", 70000)
    return caught.value.description


def test_rotation_returns_a_new_token_and_retires_the_old_one() -> None:
    store, _, first = _store()
    session, second = store.rotate(first, CLIENT, TENANT)
    assert second != first
    assert session.tenant_id == TENANT
    assert "rotated out" in _refused(store, first)
    assert store.rotate(second, CLIENT, TENANT)[1] not in (first, second)


def test_a_rotated_out_token_works_during_the_grace_only() -> None:
    store, clock, first = _store(grace=5.0)
    store.rotate(first, CLIENT, TENANT)
    clock.now += 4.9
    store.rotate(first, CLIENT, TENANT)
    clock.now += 0.2
    _refused(store, first)


def test_a_token_is_bound_to_its_client_and_tenant() -> None:
    store, _, first = _store()
    assert "different client_id" in _refused(store, first, client="client-b")
    with pytest.raises(IdentityError):
        store.rotate(first, CLIENT, OTHER_TENANT)
    store.rotate(first, CLIENT, None)  # the common endpoint accepts any tenant's token


def test_unknown_tokens_are_refused() -> None:
    store, _, _ = _store()
    assert "unknown" in _refused(store, "0.Anot-a-token")


def test_revoking_a_tenant_refuses_its_tokens_even_within_the_grace() -> None:
    store, _, first = _store(grace=60.0)
    _, second = store.rotate(first, CLIENT, TENANT)
    assert store.revoke_tenant(TENANT) == 2
    assert "revoked" in _refused(store, second)
    assert "revoked" in _refused(store, first)
    assert store.revoke_tenant(TENANT) == 0
    assert store.revoke_tenant(OTHER_TENANT) == 0
