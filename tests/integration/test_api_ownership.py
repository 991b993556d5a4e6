"""API keys see their own broadcasts: a key reads, pages, cancels and retries only the
broadcasts it sent; another key's id is answered exactly as an unknown id, and acting on it
changes nothing. An operator key (``operator@name:key``) sees and acts on every broadcast,
the CLI's and the scheduler's included. Ids with the scheduler's ``sched-`` prefix are
reserved. Real HTTP (uvicorn) against the real stack, both ledger backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from producer import Producer
from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import footprint, wait_for

ALPHA = "alpha-" + "a" * 26
BETA = "beta-" + "b" * 27
OPS = "ops-" + "o" * 28
KEYS = f"alpha:{ALPHA},beta:{BETA},operator@ops:{OPS}"
ROUTES = [("GET", ""), ("GET", "/deliveries"), ("POST", "/cancel"), ("POST", "/retry")]


@dataclass
class Clients:
    alpha: httpx.Client
    beta: httpx.Client
    ops: httpx.Client


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Clients]:
    server: RunningApi = start_api(settings_from(stack.env | {"THREADCAST_API_KEYS": KEYS}))

    def client(key: str) -> httpx.Client:
        return httpx.Client(
            base_url=server.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        )

    clients = Clients(client(ALPHA), client(BETA), client(OPS))
    yield clients
    for each in (clients.alpha, clients.beta, clients.ops):
        each.close()
    server.stop()


def rows(stack: Stack) -> object:
    """The ledger's row counts (Redis moves with other tests' deliveries meanwhile)."""
    return footprint(stack.ledger, stack.redis)[0]


def later() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def two_targets(stack: Stack) -> list[dict[str, str]]:
    return [
        {
            "tenant": stack.tenants[0],
            "group": str(uuid.uuid4()),
            "channel": f"19:own{i}x@thread.tacv2",
        }
        for i in range(2)
    ]


def body(stack: Stack, **over: object) -> dict[str, object]:
    content = f"<p>{uuid.uuid4()}</p>"
    return {"content": content, "targets": two_targets(stack), "send_at": later()} | over


def scheduled(stack: Stack, client: httpx.Client) -> str:
    """A broadcast ``client``'s key sent, waiting for tomorrow (nothing moves meanwhile)."""
    response = client.post("/v1/broadcasts", json=body(stack))
    assert response.status_code == 201, response.text
    return str(response.json()["broadcast_id"])


def answers(client: httpx.Client, broadcast_id: str) -> list[tuple[int, object]]:
    return [
        (r.status_code, r.json())
        for r in (client.request(m, f"/v1/broadcasts/{broadcast_id}{s}") for m, s in ROUTES)
    ]


def test_another_keys_broadcast_answers_as_an_unknown_id(stack: Stack, api: Clients) -> None:
    mine = scheduled(stack, api.alpha)
    before = rows(stack)
    probed = answers(api.beta, mine)
    unknown = f"never-{uuid.uuid4()}"
    assert probed == [
        (status, {"error": {**error["error"], "message": f"no broadcast with id {mine!r}"}})
        for status, error in answers(api.beta, unknown)
        if isinstance(error, dict)
    ]
    assert {status for status, _ in probed} == {404}
    assert rows(stack) == before  # beta's cancel changed nothing
    assert stack.ledger.broadcasts.counts(mine)["scheduled"] == 2
    shown = api.alpha.get(f"/v1/broadcasts/{mine}").json()
    assert shown["source"] == "alpha" and shown["counts"]["scheduled"] == 2


def test_a_key_acts_on_its_own_and_an_operator_on_all(stack: Stack, api: Clients) -> None:
    mine = scheduled(stack, api.alpha)
    assert api.alpha.post(f"/v1/broadcasts/{mine}/cancel").json()["cancelled"] == 2
    retried = api.ops.post(f"/v1/broadcasts/{mine}/retry", json={"states": ["cancelled"]})
    assert retried.json() == {"broadcast_id": mine, "requeued": 2}
    assert api.ops.get(f"/v1/broadcasts/{mine}").json()["source"] == "alpha"
    pages = api.ops.get(f"/v1/broadcasts/{mine}/deliveries").json()["deliveries"]
    assert len(pages) == 2
    # Sent now; and once sent, nothing of this test moves under the next one.
    wait_for(lambda: stack.ledger.broadcasts.counts(mine)["sent"] == 2, what="2 re-sent")


def test_the_clis_and_the_schedulers_broadcasts_are_the_operators(
    stack: Stack, api: Clients
) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with Producer(stack.settings) as producer:
        sent = producer.send("from the cli", two_targets(stack), source="cli", send_at=tomorrow)
    cli = sent.broadcast_id
    assert api.alpha.get(f"/v1/broadcasts/{cli}").status_code == 404
    assert api.ops.get(f"/v1/broadcasts/{cli}").json()["source"] == "cli"
    assert api.ops.post(f"/v1/broadcasts/{cli}/cancel").json()["cancelled"] == 2


def test_reusing_another_keys_id_reveals_nothing_and_sends_nothing(
    stack: Stack, api: Clients
) -> None:
    request = body(stack, broadcast_id=f"mine-{uuid.uuid4()}")
    assert api.alpha.post("/v1/broadcasts", json=request).status_code == 201
    before = rows(stack)
    for attempt in (request, request | {"content": "something else"}):
        response = api.beta.post("/v1/broadcasts", json=attempt)
        assert response.status_code == 422
        assert response.json()["error"]["fields"] == [
            {"field": "broadcast_id", "message": "is already used by a different broadcast"}
        ]
    assert rows(stack) == before
    again = api.alpha.post("/v1/broadcasts", json=request)
    assert again.status_code == 200 and again.json()["created"] is False


@pytest.mark.parametrize("client", ["alpha", "ops"])
def test_the_schedulers_ids_are_reserved(stack: Stack, api: Clients, client: str) -> None:
    before = rows(stack)
    taken = body(stack, broadcast_id="sched-weekly-20261207T080000Z")
    response = getattr(api, client).post("/v1/broadcasts", json=taken)
    assert response.status_code == 422
    [field] = response.json()["error"]["fields"]
    assert field["field"] == "broadcast_id" and "'sched-'" in field["message"]
    assert rows(stack) == before


def test_listing_shows_a_key_its_own_broadcasts_and_an_operator_all(
    stack: Stack, api: Clients
) -> None:
    first = scheduled(stack, api.alpha)
    second = scheduled(stack, api.alpha)
    theirs = scheduled(stack, api.beta)
    mine = api.alpha.get("/v1/broadcasts", params={"limit": 1000}).json()
    ids = [b["broadcast_id"] for b in mine["broadcasts"]]
    assert ids.index(second) < ids.index(first) and theirs not in ids  # newest first, own only
    assert {b["source"] for b in mine["broadcasts"]} == {"alpha"}
    assert mine["broadcasts"][ids.index(first)]["counts"]["scheduled"] == 2
    everyone = api.ops.get("/v1/broadcasts", params={"limit": 1000, "state": "scheduled"}).json()
    assert {first, second, theirs} <= {b["broadcast_id"] for b in everyone["broadcasts"]}
    page = api.alpha.get("/v1/broadcasts", params={"limit": 1}).json()
    assert (
        len(page["broadcasts"]) == 1 and page["next_after"] == page["broadcasts"][0]["broadcast_id"]
    )
    following = api.alpha.get("/v1/broadcasts", params={"limit": 1, "after": page["next_after"]})
    assert following.json()["broadcasts"][0]["broadcast_id"] != page["next_after"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"state": "nonsense"}, "state"),
        ({"since": "yesterday-ish"}, "since"),
        ({"source": "beta"}, "source"),
    ],
)
def test_listing_refuses_bad_parameters_by_name(
    api: Clients, params: dict[str, object], field: str
) -> None:
    response = api.alpha.get("/v1/broadcasts", params=params)
    assert response.status_code == 422
    assert field in {f["field"].rsplit(".", 1)[-1] for f in response.json()["error"]["fields"]}


def test_listing_after_another_keys_broadcast_is_not_found(stack: Stack, api: Clients) -> None:
    theirs = scheduled(stack, api.beta)
    assert api.alpha.get("/v1/broadcasts", params={"after": theirs}).status_code == 404
