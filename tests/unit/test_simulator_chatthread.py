"""The chatthreads body is validated strictly: exactly the documented shape, integer contentType."""

from __future__ import annotations

import pytest

from simulator.chatthread import ChatMessageBody, parse_chat_thread
from simulator.errors import GraphError

SEED = b'{"rootMessage":{"body":{"contentType":1,"content":"<h1>Hello world</h1>"}}}'


def test_the_documented_example_is_accepted() -> None:
    assert parse_chat_thread("application/json", SEED) == ChatMessageBody(1, "<h1>Hello world</h1>")


def test_text_content_and_a_charset_parameter_are_accepted() -> None:
    body = b'{"rootMessage":{"body":{"content":"hi","contentType":0}}}'
    assert parse_chat_thread("Application/JSON; charset=utf-8", body) == ChatMessageBody(0, "hi")


@pytest.mark.parametrize(
    ("content_type", "body", "names"),
    [
        ("text/plain", SEED, "Content-Type"),
        (None, SEED, "Content-Type"),
        ("application/json", b"", "Empty Payload"),
        ("application/json", b"{not json", "valid JSON"),
        ("application/json", b"[]", "JSON object"),
        ("application/json", b'{"rootMessage":"hi"}', "'rootMessage' must be a JSON object"),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":"html","content":"x"}}}',
            "'html'",
        ),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":"1","content":"x"}}}',
            "Edm.Int32",
        ),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":true,"content":"x"}}}',
            "true",
        ),
        ("application/json", b'{"rootMessage":{"body":{"contentType":1.0,"content":"x"}}}', "1.0"),
        ("application/json", b'{"rootMessage":{"body":{"contentType":2,"content":"x"}}}', "2"),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":1,"content":""}}}',
            "must not be empty",
        ),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":1,"content":" \\n"}}}',
            "must not be empty",
        ),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":1,"content":7}}}',
            "must be a string",
        ),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":1}}}',
            "'rootMessage.body.content' is missing",
        ),
        ("application/json", b"{}", "'rootMessage' is missing"),
        (
            "application/json",
            b'{"rootMessage":{"body":{"contentType":1,"content":"a","content":"b"}}}',
            "Duplicate property named 'content'",
        ),
        ("application/json", SEED[:-1] + b',"topic":"x"}', "property 'topic'"),
        (
            "application/json",
            b'{"rootMessage":{"subject":"s","body":{"contentType":1,"content":"x"}}}',
            "property 'subject' does not exist on type 'microsoft.graph.chatMessage'",
        ),
    ],
)
def test_anything_else_is_a_400_naming_the_problem(
    content_type: str | None, body: bytes, names: str
) -> None:
    with pytest.raises(GraphError) as caught:
        parse_chat_thread(content_type, body)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest")
    assert names in caught.value.message
