"""The post log: sequence numbers, duplicates by (tenant, group, channel, contentType, content)
across both message endpoints."""

from __future__ import annotations

from dataclasses import replace

from simulator.counters import Counters
from simulator.issued import IssuedTokens
from simulator.posts import CHANNEL_MESSAGES, PostAttempt, PostLog


def _attempt(
    content: str = "hi", channel: str = "19:a@thread.tacv2", ctype: int = 1
) -> PostAttempt:
    return PostAttempt(
        tenant_id="t",
        client_id="c",
        group_id="g",
        channel_id=channel,
        content_type=ctype,
        content=content,
        raw_body=b"{}",
        request_id="r",
        client_request_id=None,
        retry_attempt=None,
        received_at=0.0,
    )


def test_duplicates_are_counted_against_the_first_post() -> None:
    log = PostLog()
    first = log.record(_attempt())
    log.record(_attempt(content="other"))
    log.record(_attempt(channel="19:b@thread.tacv2"))
    log.record(_attempt(ctype=0))
    again = log.record(_attempt())
    assert (first.seq, first.duplicate_of) == (1, None)
    assert (again.seq, again.duplicate_of) == (5, 1)
    assert (log.accepted, log.unique, log.duplicates) == (5, 4, 1)


def test_the_same_message_by_the_other_endpoint_is_a_duplicate() -> None:
    log = PostLog()
    log.record(_attempt())
    v1 = replace(_attempt(), endpoint=CHANNEL_MESSAGES, message_id="1700000000000")
    again = log.record(v1, delayed_answer=True)
    assert again.duplicate_of == 1
    as_json = again.to_json()
    assert (as_json["endpoint"], as_json["message_id"]) == ("channel-messages", "1700000000000")
    assert as_json["delayed_answer"] is True
    assert log.record(replace(v1, content_type=0)).duplicate_of is None


def test_issued_tokens_by_tenant() -> None:
    issued = IssuedTokens()
    issued.access_token("t1", "a1")
    issued.refresh_token("t1", "r1")
    issued.access_token("t2", "a2")
    assert issued.to_json() == {"access_tokens": ["a1", "a2"], "refresh_tokens": ["r1"]}
    assert issued.to_json("t2") == {"access_tokens": ["a2"], "refresh_tokens": []}


def test_pages_and_reset() -> None:
    log = PostLog()
    for n in range(5):
        log.record(_attempt(content=str(n)))
    assert [post.seq for post in log.page(offset=1, limit=2)] == [2, 3]
    assert log.page(offset=9, limit=2) == []
    log.reset()
    assert (log.accepted, log.unique, log.duplicates) == (0, 0, 0)
    assert log.record(_attempt()).seq == 1


def test_post_json_carries_the_raw_body_as_text() -> None:
    post = PostLog().record(_attempt())
    as_json = post.to_json()
    assert as_json["raw_body"] == "{}"
    assert (as_json["endpoint"], as_json["message_id"], as_json["delayed_answer"]) == (
        "chatthreads",
        None,
        False,
    )
    assert as_json["received_at"] == "1970-01-01T00:00:00.000+00:00"


def test_counters_report_the_three_token_counters_for_every_tenant() -> None:
    counters = Counters()
    counters.token_call("t1", "device_code")
    counters.token_call("t1", "client_credentials")
    counters.invalid_grant("t2")
    counters.reject(401)
    counters.reject(400)
    counters.reject(401)
    assert counters.rejected_json() == {"400": 1, "401": 2}
    assert counters.token_calls_json() == {
        "t1": {"device_code": 1, "refresh_token": 0, "invalid_grant": 0, "client_credentials": 1},
        "t2": {"device_code": 0, "refresh_token": 0, "invalid_grant": 1},
    }
    counters.reset()
    assert counters.token_calls_json() == {}
