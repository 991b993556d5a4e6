"""Log lines: text or JSON with the extra fields, one per attempt, and never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from threadcast.logs import MASK, configure_logging, log_attempt, redact
from threadcast.settings import Settings

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIiwidGlkIjoidCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
REFRESH = "0.AXoAbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefghijklmnop"
API_KEY = "svc-secret-key-0123456789"
CLIENT_SECRET = "client~secret~value~42"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored afterwards."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)


def settings(**over: object) -> Settings:
    values: dict[str, object] = {
        "api_keys": f"svc:{API_KEY}",
        "client_secret": CLIENT_SECRET,
        "token_cache_key": Fernet.generate_key().decode(),
    }
    return Settings(**(values | over))  # type: ignore[arg-type]


def capture(root: logging.Logger, **over: object) -> io.StringIO:
    out = io.StringIO()
    configure_logging(settings(**over), stream=out)
    return out


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"token {JWT} expired",
        "bearer abcdefghijklmnop-opaque",
        f"refresh with {REFRESH}",
        f'{{"refresh_token": "{REFRESH[:12]}", "access_token": "opaque-value"}}',
        "client_secret=hunter2hunter2&x=1",
    ],
)
def test_credentials_are_masked(text: str) -> None:
    masked = redact(text)
    assert MASK in masked
    hidden = (JWT, REFRESH, REFRESH[:12], "opaque-value", "hunter2hunter2", "abcdefghijklmnop")
    for secret in hidden:
        assert secret not in masked


def test_ordinary_text_is_left_alone() -> None:
    line = "delivery 3f2a… sent: HTTP 204 request-id 5e0c2a9e-1111-2222-3333-444455556666"
    assert redact(line) == line


def test_json_line_has_the_extra_fields(root: logging.Logger) -> None:
    out = capture(root, log_json=True)
    logging.getLogger("threadcast.test").info(
        "broadcast accepted", extra={"broadcast": "b-1", "deliveries": 3, "new": True}
    )
    entry = json.loads(out.getvalue())
    assert entry["message"] == "broadcast accepted" and entry["level"] == "INFO"
    assert entry["logger"] == "threadcast.test" and entry["ts"].endswith("+00:00")
    assert (entry["broadcast"], entry["deliveries"], entry["new"]) == ("b-1", 3, True)


def test_one_line_per_attempt_in_both_formats(root: logging.Logger) -> None:
    fields = {
        "broadcast": "b-1",
        "delivery": "d-1",
        "tenant": "t-1",
        "attempt": 2,
        "status": 429,
        "outcome": "retrying",
        "request_id": "r-1",
        "client_request_id": "c-1",
        "error_code": "TooManyRequests",
        "latency_ms": 12.345,
    }
    for json_mode in (True, False):
        out = capture(root, log_json=json_mode)
        log_attempt(logging.getLogger("threadcast.worker"), **fields)  # type: ignore[arg-type]
        text = out.getvalue()
        assert text.count("\n") == 1
        if json_mode:
            entry = json.loads(text)
            assert entry["level"] == "WARNING" and entry["event"] == "attempt"
            assert {k: entry[k] for k in fields} == fields | {"latency_ms": 12.3}
        else:
            for key in (
                "broadcast=b-1",
                "delivery=d-1",
                "tenant=t-1",
                "status=429",
                "request_id=r-1",
                "client_request_id=c-1",
                "outcome=retrying",
            ):
                assert key in text


@pytest.mark.parametrize("json_mode", [True, False])
def test_secrets_never_reach_the_output(root: logging.Logger, json_mode: bool) -> None:
    out = capture(root, log_json=json_mode)
    log = logging.getLogger("threadcast.test")
    log.info("token %s for %s", JWT, "tenant")
    log.warning("calling with key %s", API_KEY)
    log.error("refused", extra={"error_message": f"bad refresh {REFRESH}"})
    log.info("secret in the message: " + CLIENT_SECRET)
    try:
        raise RuntimeError(f"Bearer {JWT}")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    for secret in (JWT, API_KEY, REFRESH, CLIENT_SECRET):
        assert secret not in text
    assert text.count(MASK) >= 5


def test_configuring_twice_writes_each_line_once(root: logging.Logger) -> None:
    first = capture(root)
    second = capture(root)
    logging.getLogger("threadcast.test").warning("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1
