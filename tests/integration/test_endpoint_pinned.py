"""``THREADCAST_ENDPOINT=chatthreads`` pins the seed's endpoint: against today's Graph its
deliveries fail with an answer saying what to set, and the deployment never switches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from producer import Producer
from tests.integration.conftest import Stack
from tests.integration.stack import wait_for
from threadcast.constants import ENDPOINT_KEY
from threadcast.endpoints import recorded

STACK_ENV = {"THREADCAST_ENDPOINT": "chatthreads"}
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(autouse=True, scope="module")
def removed_segment(stack: Stack) -> Iterator[None]:
    stack.sim.configure(chatthreads_removed=True)
    yield
    stack.sim.configure(chatthreads_removed=False)


def test_a_pinned_dead_endpoint_fails_clearly_and_never_switches(stack: Stack) -> None:
    target = {
        "tenant": stack.tenants[0],
        "group": str(uuid.uuid4()),
        "channel": "19:pinned@thread.tacv2",
    }
    with Producer(stack.settings) as producer:
        broadcast = producer.send("pinned", [target]).broadcast_id
    wait_for(lambda: stack.ledger.broadcasts.counts(broadcast)["failed"] == 1, what="failed")
    [error] = stack.ledger.broadcasts.recent_errors(broadcast)
    assert error.http_status == 400 and error.error_code == "BadRequest"
    assert "THREADCAST_ENDPOINT=auto" in (error.error_message or "")
    assert recorded(stack.ledger.deployment) is None
    assert stack.redis.get(ENDPOINT_KEY) is None
