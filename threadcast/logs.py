"""Logging for every threadcast process: one line per event, text or JSON, never a secret.

:func:`configure_logging` installs one handler on the root logger. Its formatter writes
``extra`` fields (broadcast, delivery, tenant, status, request_id, …) as ``key=value`` in
text mode or as JSON keys with ``THREADCAST_LOG_JSON=true``. Whatever is written passes
through :func:`redact` first: a bearer token, JWT, refresh token or configured secret that
slipped into a message, an argument or a traceback comes out masked (defence in depth; code
must still never log secrets on purpose).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from threadcast.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "[redacted]"
_MIN_LITERAL = 8  # shorter configured "secrets" would mask ordinary words

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs (access and id tokens): three base64url parts, the first a JSON header.
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    # "Bearer <anything token-like>", as in an Authorization header.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    # Entra ID refresh tokens start 0.A / 1.A and run long.
    (re.compile(r"\b[01]\.A[A-Za-z0-9._-]{30,}"), MASK),
    # Fernet tokens (an encrypted token cache): ciphertext, but nobody needs to read it.
    (re.compile(r"\bgAAAAA[A-Za-z0-9_-]{20,}=*"), MASK),
    # key=value / "key": "value" pairs whose key says secret.
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|client_assertion|"
            r"password|api_key|apikey|authorization|device_code|token_cache_key|api_keys)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\"'\s,&}]+)"
        ),
        r"\1" + MASK,
    ),
)

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's colourised copy of the message
}


# Every pattern above starts with one of these: a line without any of them (most lines)
# costs one search instead of one substitution per pattern.
_MAYBE_SECRET = re.compile(
    r"eyJ|(?i:bearer)|[01]\.A|gAAAAA|(?i:access_token|refresh_token|id_token|client_secret|"
    r"client_assertion|password|api_key|apikey|authorization|device_code|token_cache_key|"
    r"api_keys)"
)


def redact(text: str, literals: Iterable[str] = ()) -> str:
    """``text`` with anything that looks like a credential, and each literal, masked."""
    for literal in literals:
        text = text.replace(literal, MASK)
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site passed with ``extra=``, in the order given."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class RedactionFilter(logging.Filter):
    """Masks credentials in a record's message and arguments before any handler sees them."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__()
        self.literals = tuple(s for s in literals if len(s) >= _MIN_LITERAL)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what we have, masked
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message, self.literals)
        record.args = None
        return True


class TextFormatter(logging.Formatter):
    """The classic line, then each extra field as ``key=value``."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.literals = tuple(literals)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={_plain(v)}" for k, v in extras(record).items())
        if fields:
            head, newline, rest = line.partition("\n")
            line = f"{head} {fields}{newline}{rest}"
        return redact(line, self.literals)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the extra fields, exc."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__()
        self.literals = tuple(literals)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in extras(record).items() if k not in entry}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False), self.literals)


def _plain(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c.isspace() for c in text)) else text


def secret_literals(settings: Settings) -> list[str]:
    """The configured secrets themselves, masked wherever they appear."""
    found: list[str] = []
    for secret in (settings.client_secret, settings.token_cache_key):
        if secret is not None:
            found += [part.strip() for part in secret.get_secret_value().split(",")]
    if settings.api_keys is not None:
        for entry in settings.api_keys.get_secret_value().split(","):
            key = entry.partition(":")[2].strip()
            if key and not key.startswith("sha256:"):
                found.append(key)
    return [s for s in found if len(s) >= _MIN_LITERAL]


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Make one handler, writing to ``stream`` (stderr) in the configured format, the root
    logger's only handler (a second call replaces it: no line is ever written twice)."""
    literals = secret_literals(settings)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(literals) if settings.log_json else TextFormatter(literals))
    handler.addFilter(RedactionFilter(literals))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # One line per attempt is ours (log_attempt); the libraries' own per-request and per-task
    # lines say the same thing again, at a real cost per delivery. DEBUG brings them back.
    quiet = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    return handler


_CHATTY = ("httpx", "httpcore", "celery.app.trace", "celery.worker.strategy")


def log_attempt(
    logger: logging.Logger,
    *,
    broadcast: str,
    delivery: str,
    tenant: str,
    attempt: int,
    status: int | None,
    outcome: str,
    request_id: str | None,
    client_request_id: str,
    error_code: str | None = None,
    latency_ms: float | None = None,
) -> None:
    """The one line each HTTP attempt gets (worker): what Microsoft support asks for."""
    level = logging.INFO if outcome == "sent" else logging.WARNING
    logger.log(
        level,
        "attempt %s",
        outcome,
        extra={
            "event": "attempt",
            "broadcast": broadcast,
            "delivery": delivery,
            "tenant": tenant,
            "attempt": attempt,
            "status": status,
            "outcome": outcome,
            "error_code": error_code,
            "request_id": request_id,
            "client_request_id": client_request_id,
            "latency_ms": None if latency_ms is None else round(latency_ms, 1),
        },
    )
