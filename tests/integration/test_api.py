"""The HTTP API over real HTTP (uvicorn) against the real stack: Redis, a Celery worker, the
simulator, the ledger on each backend.

Send through the API, see it sent in the ledger, read it back through the API; page and
filter deliveries; cancel and retry; keys; the OpenAPI document; metrics after a run.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.apiserver import RunningApi, start_api
from tests.integration.conftest import Stack, settings_from
from tests.integration.stack import wait_for
from threadcast.ledger import DeliveryQueries

SVC_KEY = "svc-" + "k" * 28
HASHED_KEY = "hashed-" + "h" * 25
KEYS = f"svc:{SVC_KEY},hashed:sha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"
MAX_TARGETS = 50


@dataclass
class Api:
    http: httpx.Client  # carries the svc key
    server: RunningApi

    def url(self, path: str) -> str:
        return self.server.base_url + path


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    env = stack.env | {"THREADCAST_API_KEYS": KEYS, "THREADCAST_API_MAX_TARGETS": str(MAX_TARGETS)}
    server = start_api(settings_from(env))
    http = httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {SVC_KEY}"}, timeout=30
    )
    try:
        yield Api(http, server)
    finally:
        http.close()
        server.stop()


def targets(stack: Stack, n: int) -> list[dict[str, str]]:
    group = str(uuid.uuid4())
    return [
        {"tenant": stack.tenants[i % 2], "group": group, "channel": f"19:api{i}x@thread.tacv2"}
        for i in range(n)
    ]


def settled(stack: Stack, broadcast_id: str, expected: int) -> bool:
    counts = stack.ledger.broadcasts.counts(broadcast_id)
    return counts["sent"] + counts["failed"] + counts["unknown"] == expected


def later() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def send(api: Api, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return api.http.post("/v1/broadcasts", json=body, **kw)


def test_a_broadcast_sent_over_http_is_sent_and_visible(stack: Stack, api: Api) -> None:
    content = f"<p>over http {uuid.uuid4()}</p>"
    many = targets(stack, 6)
    response = send(api, {"content": content, "content_type": "html", "targets": many})
    assert response.status_code == 201, response.text
    accepted = response.json()
    broadcast_id = accepted["broadcast_id"]
    assert accepted == {
        "broadcast_id": broadcast_id,
        "deliveries": 6,
        "created": True,
        "published": 6,
        "scheduled": False,
    }
    assert response.headers["location"] == f"/v1/broadcasts/{broadcast_id}"
    wait_for(lambda: settled(stack, broadcast_id, 6), what="6 deliveries to settle")
    assert stack.ledger.broadcasts.counts(broadcast_id)["sent"] == 6

    shown = api.http.get(f"/v1/broadcasts/{broadcast_id}").json()
    assert shown["broadcast_id"] == broadcast_id and shown["source"] == "svc"
    assert shown["total"] == 6 and shown["done"] is True and shown["errors"] == []
    assert shown["counts"]["sent"] == 6 and sum(shown["counts"].values()) == 6
    rows = api.http.get(f"/v1/broadcasts/{broadcast_id}/deliveries").json()["deliveries"]
    assert [r["state"] for r in rows] == ["sent"] * 6
    assert [r["channel"] for r in rows] == [t["channel"] for t in many]  # in the order given
    assert all(r["last_status"] == 204 and r["last_request_id"] and r["sent_at"] for r in rows)
    posted = [p for p in stack.sim.posts() if p["content"] == content]
    assert sorted(p["request_id"] for p in posted) == sorted(r["last_request_id"] for r in rows)


def test_the_same_broadcast_id_creates_nothing_new(stack: Stack, api: Api) -> None:
    body = {
        "content": "hello",
        "content_type": "text",
        "targets": targets(stack, 2),
        "broadcast_id": f"api-{uuid.uuid4()}",
    }
    first = send(api, body)
    wait_for(lambda: settled(stack, body["broadcast_id"], 2), what="2 deliveries")
    again = send(api, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {
        "broadcast_id": body["broadcast_id"],
        "deliveries": 2,
        "created": False,
        "published": 0,
        "scheduled": False,
    }
    other = send(api, body | {"content": "something else"})
    assert other.status_code == 422
    assert other.json()["error"]["fields"][0]["field"] == "broadcast_id"
    assert stack.ledger.broadcasts.counts(body["broadcast_id"])["sent"] == 2


def test_deliveries_are_paged_and_filtered(stack: Stack, api: Api) -> None:
    response = send(api, {"content": "later", "targets": targets(stack, 7), "send_at": later()})
    assert response.status_code == 201 and response.json()["scheduled"] is True
    base = f"/v1/broadcasts/{response.json()['broadcast_id']}/deliveries"
    seen: list[dict[str, Any]] = []
    after: int | None = None
    sizes = []
    while True:
        params: dict[str, Any] = {"limit": 3} | ({} if after is None else {"after": after})
        page = api.http.get(base, params=params).json()
        sizes.append(len(page["deliveries"]))
        seen += page["deliveries"]
        after = page["next_after"]
        if after is None:
            break
    assert sizes == [3, 3, 1]
    assert [d["seq"] for d in seen] == sorted({d["seq"] for d in seen})
    assert {d["state"] for d in seen} == {"scheduled"}
    mine = api.http.get(base, params={"tenant": stack.tenants[0].upper()}).json()["deliveries"]
    assert [d["id"] for d in mine] == [d["id"] for d in seen if d["tenant"] == stack.tenants[0]]
    assert len(mine) == 4
    both = api.http.get(base, params=[("state", "scheduled"), ("state", "sent")]).json()
    assert len(both["deliveries"]) == 7
    none = api.http.get(base, params={"state": "sent"}).json()
    assert none == {"deliveries": [], "next_after": None}


def test_cancel_then_retry_one_tenant(stack: Stack, api: Api) -> None:
    response = send(
        api, {"content": f"cancel {uuid.uuid4()}", "targets": targets(stack, 4), "send_at": later()}
    )
    broadcast_id = response.json()["broadcast_id"]
    cancelled = api.http.post(f"/v1/broadcasts/{broadcast_id}/cancel")
    assert cancelled.json() == {"broadcast_id": broadcast_id, "cancelled": 4}
    assert api.http.get(f"/v1/broadcasts/{broadcast_id}").json()["counts"]["cancelled"] == 4
    # The default retries failed and unknown deliveries: there are none.
    nothing = api.http.post(f"/v1/broadcasts/{broadcast_id}/retry")
    assert nothing.json() == {"broadcast_id": broadcast_id, "requeued": 0}
    retried = api.http.post(
        f"/v1/broadcasts/{broadcast_id}/retry",
        json={"states": ["cancelled"], "tenant": stack.tenants[0]},
    )
    assert retried.json() == {"broadcast_id": broadcast_id, "requeued": 2}
    wait_for(lambda: settled(stack, broadcast_id, 2), what="the 2 re-queued deliveries")
    counts = api.http.get(f"/v1/broadcasts/{broadcast_id}").json()["counts"]
    assert (counts["sent"], counts["cancelled"]) == (2, 2)
    sent = api.http.get(f"/v1/broadcasts/{broadcast_id}/deliveries", params={"state": "sent"})
    assert {d["tenant"] for d in sent.json()["deliveries"]} == {stack.tenants[0]}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("GET", "/deliveries"), ("POST", "/cancel"), ("POST", "/retry")],
)
def test_an_unknown_broadcast_is_404(api: Api, method: str, path: str) -> None:
    response = api.http.request(method, f"/v1/broadcasts/no-such-broadcast{path}")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no broadcast with id 'no-such-broadcast'"


PROTECTED = [
    ("GET", "/v1/broadcasts/x"),
    ("GET", "/v1/broadcasts/x/deliveries"),
    ("POST", "/v1/broadcasts/x/cancel"),
    ("POST", "/v1/broadcasts/x/retry"),
    ("POST", "/v1/broadcasts"),
    ("GET", "/v1/no-such-route"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-key-0123456789",
        f"Basic {SVC_KEY}",
        f"Bearer {SVC_KEY}x",
        f"bearer {'x' * 5000}",
    ],
)
def test_a_missing_or_wrong_key_is_401_and_reveals_nothing(
    api: Api, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answers = set()
    with httpx.Client(base_url=api.server.base_url, headers=headers, timeout=30) as anonymous:
        for method, path in PROTECTED:
            response = anonymous.request(method, path, json={"content": "x"})
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            answers.add(response.text)
    assert len(answers) == 1  # the same answer whatever the route, the key or the method


def test_a_hashed_key_works_and_its_name_is_the_source(stack: Stack, api: Api) -> None:
    with httpx.Client(
        base_url=api.server.base_url, timeout=30, headers={"Authorization": f"bearer  {HASHED_KEY}"}
    ) as hashed:
        response = hashed.post(
            "/v1/broadcasts", json={"content": "from the hashed key", "targets": targets(stack, 1)}
        )
        assert response.status_code == 201, response.text
        broadcast_id = response.json()["broadcast_id"]
        assert hashed.get(f"/v1/broadcasts/{broadcast_id}").json()["source"] == "hashed"
    assert stack.ledger.broadcasts.info(broadcast_id).source == "hashed"


def test_open_routes_need_no_key(api: Api) -> None:
    assert httpx.get(api.url("/healthz")).json() == {"status": "ok", "ledger": True, "redis": True}
    assert httpx.get(api.url("/openapi.json")).status_code == 200


def test_the_openapi_document(api: Api) -> None:
    document = httpx.get(api.url("/openapi.json")).json()
    validate(document)
    paths = document["paths"]
    assert set(paths) == {
        "/v1/broadcasts",
        "/v1/broadcasts/dry-run",  # audiences resolved, nothing stored (issue 15)
        "/v1/broadcasts/{broadcast_id}",
        "/v1/broadcasts/{broadcast_id}/deliveries",
        "/v1/broadcasts/{broadcast_id}/cancel",
        "/v1/broadcasts/{broadcast_id}/retry",
        "/v1/broadcasts/{broadcast_id}/edit",  # edits and recalls (issue 15 item 4)
        "/v1/broadcasts/{broadcast_id}/recall",
        "/v1/broadcasts/{broadcast_id}/changes",
        "/v1/broadcasts/{broadcast_id}/changes/{change_id}/deliveries/{delivery_id}/attempts",
        # the console's views (issue 16 item 1): producer/api/details.py
        "/v1/broadcasts/{broadcast_id}/progress",
        "/v1/broadcasts/{broadcast_id}/breakdown",
        "/v1/broadcasts/{broadcast_id}/deliveries/{delivery_id}/attempts",
        "/v1/broadcasts/{broadcast_id}/retry/preview",
        "/v1/broadcasts/{broadcast_id}/cancel/preview",
        "/v1/broadcasts/{broadcast_id}/export",
        "/v1/schedules",
        "/v1/schedules/{schedule_id}",
        "/v1/schedules/{schedule_id}/pause",
        "/v1/schedules/{schedule_id}/resume",
        "/v1/schedules/{schedule_id}/skip",
        "/v1/tenants",
        "/v1/health",
        "/v1/webhooks",  # producer/api/webhooks.py
        "/v1/webhooks/events",
        "/v1/webhooks/{name}/resume",
        "/healthz",
        "/metrics",
    }
    assert set(paths["/v1/broadcasts"]) == {"get", "post"}  # get: the listing (issue 16)
    assert set(paths["/v1/broadcasts/{broadcast_id}/retry"]) == {"post"}
    post = paths["/v1/broadcasts"]["post"]
    assert {"200", "201", "401", "413", "422", "503"} <= set(post["responses"])
    assert post["security"] == [{"HTTPBearer": []}]
    schemas = document["components"]["schemas"]
    body = schemas["BroadcastIn"]
    assert body["additionalProperties"] is False and set(body["required"]) == {"content"}
    assert set(body["properties"]) == {
        "content",
        "content_type",
        "targets",
        "audiences",  # beside or instead of targets (issue 15)
        "send_at",
        "broadcast_id",
        "subject",  # the message parts (issue 15)
        "importance",
        "cards",
        "images",
        "mentions",
    }
    # A target's other fields are its personal text's variables (issue 15).
    assert schemas["TargetIn"]["additionalProperties"] == {"type": ["string", "number"]}
    error = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_after_a_run_show_the_right_counts(stack: Stack, api: Api) -> None:
    before = scrape(api)
    response = send(api, {"content": f"metrics {uuid.uuid4()}", "targets": targets(stack, 4)})
    broadcast_id = response.json()["broadcast_id"]
    for _ in range(3):
        httpx.get(api.url("/v1/broadcasts/x"))  # no key
    wait_for(lambda: settled(stack, broadcast_id, 4), what="4 deliveries")
    wait_for(lambda: stack.redis.llen("threadcast.deliveries") == 0, what="an empty queue")
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("threadcast_api_broadcasts_total", source="svc", result="created") == 1
    route = {"method": "POST", "route": "/v1/broadcasts"}
    assert delta("threadcast_api_requests_total", **route, status="201") == 1
    assert delta("threadcast_api_auth_failures_total") == 3
    for tenant in stack.tenants:
        assert delta("threadcast_deliveries", state="sent", tenant=tenant) == 2
    # Every (state, tenant) gauge is exactly what the ledger holds.
    counts = DeliveryQueries(stack.ledger.engine).counts_by_state_and_tenant()
    ledger = {(c.state, c.tenant): c.count for c in counts}
    shown = {
        (dict(labels)["state"], dict(labels)["tenant"]): value
        for (name, labels), value in after.items()
        if name == "threadcast_deliveries"
    }
    assert shown == ledger
    assert after[("threadcast_queue_depth", (("queue", "threadcast.deliveries"),))] == 0
    assert after[("threadcast_ledger_up", ())] == after[("threadcast_redis_up", ())] == 1
