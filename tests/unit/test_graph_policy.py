from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from threadcast.contract import ContentType
from threadcast.ledger import DeliveryState
from worker.graph import GraphReply, chatthread_body, chatthreads_url, parse_retry_after
from worker.policy import RetryPolicy, judge

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SEED_EXAMPLE = {"rootMessage": {"body": {"contentType": 1, "content": "<h1>Hello world</h1>"}}}


def test_url_encodes_the_channel_id_once() -> None:
    url = chatthreads_url("https://g", "02bd9fd6-8f93-4758-87c3-1fb73740a315", "19:ab@thread.tacv2")
    assert url == (
        "https://g/beta/groups/02bd9fd6-8f93-4758-87c3-1fb73740a315/channels/"
        "19%3Aab%40thread.tacv2/chatthreads"
    )


def test_body_is_the_seed_example_with_an_integer_content_type() -> None:
    body = chatthread_body("<h1>Hello world</h1>", ContentType.HTML)
    assert json.loads(body) == SEED_EXAMPLE
    assert body == b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'
    assert (
        json.loads(chatthread_body("hi", ContentType.TEXT))["rootMessage"]["body"]["contentType"]
        == 0
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Sun, 29 Nov 2026 12:00:30 GMT", 30.0),
        ("Sun, 29 Nov 2026 11:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_retry_after_both_forms(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def reply(status: int | None, **kw: object) -> GraphReply:
    return GraphReply(status=status, latency_ms=1.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (204, DeliveryState.SENT),
        (201, DeliveryState.SENT),
        (400, DeliveryState.FAILED),
        (403, DeliveryState.FAILED),
        (404, DeliveryState.FAILED),
        (409, DeliveryState.FAILED),
        (429, DeliveryState.RETRYING),
        (500, DeliveryState.RETRYING),
        (503, DeliveryState.RETRYING),
        (504, DeliveryState.RETRYING),
    ],
)
def test_status_mapping(status: int, state: DeliveryState) -> None:
    outcome, delay = judge(reply(status), 1, RetryPolicy(), NOW, random.Random(1))
    assert outcome.state is state
    assert (delay is not None) == (state is DeliveryState.RETRYING)


def test_no_answer_before_sending_retries_but_after_sending_is_unknown() -> None:
    policy, rng = RetryPolicy(), random.Random(1)
    before, _ = judge(reply(None, maybe_sent=False), 1, policy, NOW, rng)
    after, delay = judge(reply(None, maybe_sent=True), 1, policy, NOW, rng)
    assert before.state is DeliveryState.RETRYING
    assert after.state is DeliveryState.UNKNOWN and delay is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy, rng = RetryPolicy(cap_seconds=60, retry_after_cap=300), random.Random(1)
    outcome, delay = judge(reply(429, retry_after=120.0), 1, policy, NOW, rng)
    assert delay == 120.0 and outcome.next_attempt_at == NOW + timedelta(seconds=120)
    _, delay = judge(reply(503, retry_after=86400.0), 1, policy, NOW, rng)
    assert delay == 300


def test_attempts_exhausted_fail_with_reason() -> None:
    outcome, delay = judge(reply(503), 5, RetryPolicy(max_attempts=5), NOW, random.Random(1))
    assert outcome.state is DeliveryState.FAILED and delay is None
    assert outcome.error_message is not None and "gave up after 5 attempts" in outcome.error_message


def test_full_jitter_stays_within_exponential_cap() -> None:
    policy, rng = RetryPolicy(base_seconds=1, cap_seconds=10), random.Random(7)
    for attempt in range(1, 10):
        for _ in range(50):
            assert 0 <= policy.backoff(attempt, None, rng) <= min(10, 2 ** (attempt - 1))


def test_odd_graph_answers_become_replies_that_fit_the_ledger() -> None:
    """Whatever Graph answers is a reply the ledger can hold, never an exception: a
    superscript Retry-After, error JSON nested past the parser's depth, a request-id longer
    than its column, a body that is not JSON at all."""
    from worker.graph import _reply

    deep = b'{"error": ' * 100_000 + b"1" + b"}" * 100_000
    headers = {"Retry-After": "\u00b2", "request-id": "r" * 500}
    reply = _reply(503, headers, deep, 0.0)
    assert reply.status == 503 and reply.retry_after is None
    assert reply.request_id == "r" * 64
    assert reply.error_code is None and reply.error_message is not None
    assert len(reply.error_message) <= 500
    created = _reply(201, {}, b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 0.0)
    assert created.ok and created.message_id is None
    plain = _reply(400, {}, b"\xff\xfe not json", 0.0)
    assert plain.error_code is None and plain.error_message is not None
    assert parse_retry_after("9999999999999999999999") == 9999999999999999999999.0
    assert parse_retry_after("Fri, 31 Dec 99999 23:59:59 GMT") is None
