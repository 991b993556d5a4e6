"""A tenant whose sign-in dies mid-broadcast waits, then resumes after `threadcast login`."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from producer import Producer
from producer.accounts import list_accounts, log_out
from producer.signin import sign_in
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for

# Sign-ins live in the token cache; the ledger's part (waiting_auth) is the ledger tests':
# one stack.
pytestmark = pytest.mark.backends("sqlite")


# One backend keeps the suite under 10 min (the ledger tests run both).
@pytest.mark.backends("sqlite")
def test_revoked_tenant_waits_then_resumes_after_login(stack: Stack) -> None:
    revoked, healthy = stack.tenants
    content = f"<p>revoke {uuid.uuid4()}</p>"
    targets = [
        {"tenant": tenant, "group": str(uuid.uuid4()), "channel": f"19:r{i}@thread.tacv2"}
        for i in range(300)
        for tenant in (revoked, healthy)
    ]
    with Producer(stack.settings) as producer:
        result = producer.send(content, targets, content_type="html")

    def sent_for(tenant: str) -> int:
        with stack.ledger.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM deliveries "
                        "WHERE broadcast_id = :b AND tenant_id = :t AND state = 'sent'"
                    ),
                    {"b": result.broadcast_id, "t": tenant},
                ).scalar()
                or 0
            )

    wait_for(lambda: sent_for(revoked) >= 20, what="some posts before the revoke")
    stack.sim.revoke(revoked)
    wait_for(
        lambda: (
            stack.ledger.broadcasts.counts(result.broadcast_id)["sent"]
            + stack.ledger.broadcasts.counts(result.broadcast_id)["waiting_auth"]
            == 600
        ),
        what="everything sent or waiting",
    )
    counts = stack.ledger.broadcasts.counts(result.broadcast_id)
    assert counts["failed"] == 0 and counts["unknown"] == 0
    assert sent_for(healthy) == 300
    assert 0 < counts["waiting_auth"] <= 300 - 20
    accounts = {a.tenant: a for a in list_accounts(stack.settings)}
    assert accounts[revoked].state == "needs sign-in"
    assert accounts[revoked].waiting == counts["waiting_auth"]
    assert accounts[healthy].state == "ok" and accounts[healthy].waiting == 0

    _, resumed = sign_in(stack.settings, revoked, lambda _t: None)
    assert resumed == counts["waiting_auth"]
    wait_for(lambda: sent_for(revoked) == 300, what="the revoked tenant to finish")
    final = stack.ledger.broadcasts.counts(result.broadcast_id)
    assert final["sent"] == 600 and sum(final.values()) - final["sent"] == 0, final
    posts = [p for p in stack.sim.posts() if p["content"] == content]
    assert len(posts) == 600
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == 600
    assert {a.tenant: a.state for a in list_accounts(stack.settings)}[revoked] == "ok"


def test_logout_then_sends_wait_for_a_sign_in(stack: Stack) -> None:
    tenant = str(uuid.uuid4())
    sign_in(stack.settings, tenant, lambda _t: None)
    target = {"tenant": tenant, "group": str(uuid.uuid4()), "channel": "19:out@thread.tacv2"}
    with Producer(stack.settings) as producer:
        before = producer.send("<p>before logout</p>", [target], content_type="html")
        wait_for(lambda: stack.ledger.broadcasts.counts(before.broadcast_id)["sent"] == 1)
        log_out(stack.settings, tenant)
        assert tenant not in {a.tenant for a in list_accounts(stack.settings)}
        try:
            producer.send("<p>after logout</p>", [target], content_type="html")
        except Exception as exc:
            assert "has never signed in" in str(exc)
        else:
            raise AssertionError("a logged-out tenant must not accept new broadcasts")
