"""Device codes: pending until approved (automatically, after a delay), redeemable once."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.devicecodes import DEVICE_CODE_LIFETIME, DeviceCodeStore
from simulator.errors import IdentityError
from simulator.scopes import parse_scopes

TENANT = "0b7d3f2a-5c1e-4a8b-9d6f-1e2a3b4c5d6e"


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _error(store: DeviceCodeStore, code: str, tenant: str = TENANT, client: str = "c") -> str:
    with pytest.raises(IdentityError) as caught:
        store.redeem(code, tenant, client)
    return caught.value.error


def test_pending_then_approved_then_gone() -> None:
    clock = FakeClock()
    store = DeviceCodeStore(approve_delay=2.0, clock=clock)
    code = store.issue(TENANT, "c", parse_scopes("Group.ReadWrite.All offline_access"))
    assert len(code.user_code) == 9 and code.user_code.isupper()
    assert _error(store, code.device_code) == "authorization_pending"
    clock.now += 2.0
    assert store.redeem(code.device_code, TENANT, "c") == code
    assert _error(store, code.device_code) == "invalid_grant"


def test_a_code_is_bound_to_its_tenant_and_client() -> None:
    clock = FakeClock()
    store = DeviceCodeStore(approve_delay=0.0, clock=clock)
    code = store.issue(TENANT, "c", parse_scopes("Group.ReadWrite.All"))
    assert _error(store, code.device_code, client="other") == "invalid_grant"
    assert _error(store, code.device_code, tenant="common") == "invalid_grant"
    store.redeem(code.device_code, TENANT, "c")


def test_codes_expire() -> None:
    clock = FakeClock()
    store = DeviceCodeStore(approve_delay=0.0, clock=clock)
    code = store.issue(TENANT, "c", parse_scopes("Group.ReadWrite.All"))
    clock.now += DEVICE_CODE_LIFETIME
    assert _error(store, code.device_code) == "expired_token"
    store.issue(TENANT, "c", parse_scopes("Group.ReadWrite.All"))  # purges what expired
    assert len(store) == 1
