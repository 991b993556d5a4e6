"""Refusals that belong to a tenant or to a target, not to one delivery.

A ``403`` for a missing permission (the tenant's consent was withdrawn) pauses the tenant's
deliveries as ``waiting_auth`` with the reason shown, until ``threadcast login``; a ``403``
for a team the signed-in user is not a member of fails only the deliveries to that team,
with Graph's error code recorded. ``login`` asks for the least permission the endpoint needs.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from producer import Producer
from producer.accounts import list_accounts
from producer.signin import sign_in
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.endpoints import CHANNEL_MESSAGE_SEND, GROUP_READWRITE_ALL

# How the worker judges Graph's refusals does not depend on the ledger's backend: one stack.
pytestmark = pytest.mark.backends("sqlite")


def _targets(tenant: str, teams: list[str], per_team: int) -> list[dict[str, str]]:
    return [
        {"tenant": tenant, "group": team, "channel": f"19:r{uuid.uuid4().hex[:8]}@thread.tacv2"}
        for team in teams
        for _ in range(per_team)
    ]


def _states(stack: Stack, broadcast: str, tenant: str) -> dict[str, int]:
    with stack.ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT state, COUNT(*) FROM deliveries WHERE broadcast_id = :b "
                "AND tenant_id = :t GROUP BY state"
            ),
            {"b": broadcast, "t": tenant},
        ).all()
    return {state: int(n) for state, n in rows}


def _forbidden(stack: Stack, tenant: str, content: str) -> int:
    """Requests of the tenant's that Graph refused: posts the simulator never recorded."""
    return (
        0
        if content is None
        else sum(1 for p in stack.sim.posts() if p["tenant"] == tenant and p["content"] == content)
    )


# One backend keeps the suite under 10 min (the ledger tests run both).
def test_missing_consent_pauses_the_tenant_until_login(stack: Stack) -> None:
    paused, other = stack.tenants
    teams = [str(uuid.uuid4()) for _ in range(2)]
    content = f"<p>consent {uuid.uuid4()}</p>"
    before = int(stack.sim.stats()["rejected"].get("403", 0))
    stack.sim.consent(paused, revoke=[GROUP_READWRITE_ALL])
    try:
        with Producer(stack.settings) as producer:
            broadcast = producer.send(
                content,
                _targets(paused, teams, 15) + _targets(other, teams, 3),
                content_type="html",
            ).broadcast_id
        wait_for(
            lambda: _states(stack, broadcast, paused) == {"waiting_auth": 30},
            what="the tenant's 30 deliveries to wait for a sign-in",
        )
        wait_for(lambda: _states(stack, broadcast, other) == {"sent": 6}, what="the other 6")
    finally:
        stack.sim.consent(paused, grant=[GROUP_READWRITE_ALL])
    # Not a failure repeated 30 times: a few posts in flight meet the 403, the rest wait.
    refused = int(stack.sim.stats()["rejected"].get("403", 0)) - before
    assert 1 <= refused <= 10
    [account] = [a for a in list_accounts(stack.settings) if a.tenant == paused]
    assert account.state == "needs sign-in" and "consent" in (account.reason or "")
    with stack.ledger.engine.connect() as conn:
        reasons = (
            conn.execute(
                text(
                    "SELECT DISTINCT last_error_message FROM deliveries WHERE broadcast_id = :b "
                    "AND tenant_id = :t"
                ),
                {"b": broadcast, "t": paused},
            )
            .scalars()
            .all()
        )
    assert reasons and all("consent" in r for r in reasons)

    _user, resumed = sign_in(stack.settings, paused, lambda _text: None)
    assert resumed == 30
    wait_for(lambda: _states(stack, broadcast, paused) == {"sent": 30}, what="30 sent")
    assert _forbidden(stack, paused, content) == 30  # each posted exactly once
    with stack.ledger.engine.connect() as conn:
        budgets = (
            conn.execute(
                text(
                    "SELECT DISTINCT attempts - attempt_base FROM deliveries "
                    "WHERE broadcast_id = :b AND tenant_id = :t"
                ),
                {"b": broadcast, "t": paused},
            )
            .scalars()
            .all()
        )
    assert set(budgets) == {1}  # a person acted: the attempt budget started again


def test_a_team_the_user_is_not_a_member_of_fails_only_its_deliveries(stack: Stack) -> None:
    tenant = stack.tenants[1]
    outside, inside = str(uuid.uuid4()), str(uuid.uuid4())
    stack.sim.membership(tenant, outside, member=False)
    try:
        with Producer(stack.settings) as producer:
            broadcast = producer.send(
                f"<p>members {uuid.uuid4()}</p>",
                _targets(tenant, [outside, inside], 3),
                content_type="html",
            ).broadcast_id
        wait_for(
            lambda: _states(stack, broadcast, tenant) == {"failed": 3, "sent": 3},
            what="3 failed and 3 sent",
        )
    finally:
        stack.sim.membership(tenant, outside, member=True)
    with stack.ledger.engine.connect() as conn:
        failed = conn.execute(
            text(
                "SELECT group_id, last_status, last_error_code, attempts FROM deliveries "
                "WHERE broadcast_id = :b AND state = 'failed'"
            ),
            {"b": broadcast},
        ).all()
    assert {(r.group_id, r.last_status, r.last_error_code, r.attempts) for r in failed} == {
        (outside, 403, "Forbidden", 1)
    }
    assert {a.tenant: a.state for a in list_accounts(stack.settings)}[tenant] == "ok"


def test_login_asks_for_the_least_permission_the_endpoint_needs(stack: Stack) -> None:
    cases = {
        "channel-messages": [CHANNEL_MESSAGE_SEND],
        "chatthreads": [GROUP_READWRITE_ALL],
        "auto": [GROUP_READWRITE_ALL],
    }
    for endpoint, scopes in cases.items():
        settings = stack.settings.model_copy(update={"endpoint": endpoint})
        tenant = str(uuid.uuid4())
        sign_in(settings, tenant, lambda _text: None)
        [account] = [a for a in list_accounts(settings) if a.tenant == tenant]
        assert account.scopes == scopes, endpoint
