"""What the token tests share: sending to chosen tenants and reading back what became of it."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, select, text

from producer import Producer
from producer.signin import sign_in
from tests.integration.stack import SimAdmin, wait_for
from threadcast.ledger import Ledger
from threadcast.settings import Settings

#: How much of a token's head and tail is searched for on its own.
_PART = 20

#: States a delivery rests in until someone acts (everything but queued/retrying/sending).
SETTLED = frozenset({"sent", "failed", "unknown", "waiting_auth", "cancelled"})


@dataclass(frozen=True)
class Sent:
    broadcast_id: str
    content: str
    targets: int


@dataclass(frozen=True)
class Row:
    id: str
    tenant: str
    state: str
    attempts: int
    error_code: str | None
    error_message: str | None


def new_tenant(settings: Settings) -> str:
    """A tenant signed in just now, whose token no worker process holds yet."""
    tenant = str(uuid.uuid4())
    sign_in(settings, tenant, lambda _text: None)
    return tenant


def send(settings: Settings, tenants: Iterable[str], per_tenant: int, tag: str) -> Sent:
    """One broadcast to ``per_tenant`` channels of each tenant, each in a team of its own (so
    no team limit slows it down)."""
    content = f"<p>{tag} {uuid.uuid4()}</p>"
    targets = [
        {"tenant": tenant, "group": str(uuid.uuid4()), "channel": f"19:{tag}{i}@thread.tacv2"}
        for tenant in tenants
        for i in range(per_tenant)
    ]
    with Producer(settings) as producer:
        result = producer.send(content, targets, content_type="html")
    return Sent(result.broadcast_id, content, len(targets))


def rows(ledger: Ledger, broadcast_id: str) -> list[Row]:
    query = text(
        "SELECT id, tenant_id, state, attempts, last_error_code, last_error_message "
        "FROM deliveries WHERE broadcast_id = :b ORDER BY id"
    )
    with ledger.engine.connect() as conn:
        return [Row(*row) for row in conn.execute(query, {"b": broadcast_id}).all()]


def history(ledger: Ledger, delivery_id: str) -> list[int | None]:
    """The HTTP status of each attempt at the delivery, in order."""
    query = text("SELECT http_status FROM attempts WHERE delivery_id = :d ORDER BY number")
    with ledger.engine.connect() as conn:
        return [row[0] for row in conn.execute(query, {"d": delivery_id}).all()]


def wait_settled(ledger: Ledger, sent: Sent, timeout: float = 90.0) -> list[Row]:
    """Wait until every delivery of the broadcast rests, and return them."""

    def settled() -> bool:
        found = rows(ledger, sent.broadcast_id)
        return len(found) == sent.targets and all(r.state in SETTLED for r in found)

    wait_for(settled, timeout, f"broadcast {sent.broadcast_id} to settle")
    return rows(ledger, sent.broadcast_id)


def states(found: Sequence[Row]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for row in found:
        counted[row.state] = counted.get(row.state, 0) + 1
    return counted


def assert_posted_once(sim: SimAdmin, sent: Sent) -> None:
    """The simulator accepted exactly one post per target of the broadcast."""
    posts = [p for p in sim.posts() if p["content"] == sent.content]
    assert len(posts) == sent.targets
    assert len({(p["tenant"], p["group"], p["channel"]) for p in posts}) == sent.targets
    assert not [p for p in posts if p["duplicate_of"] is not None]


def leaks(tokens: Iterable[str], places: dict[str, str]) -> list[str]:
    """The places holding any token, whole or its head or tail (a truncated or partly
    masked copy is a leak too)."""
    needles = {part for token in tokens for part in (token, token[:_PART], token[-_PART:])}
    return sorted(where for where, text in places.items() if any(n in text for n in needles))


def ledger_texts(ledger: Ledger) -> dict[str, str]:
    """Every row of every table of the ledger, as text, by table."""
    meta = MetaData()
    meta.reflect(ledger.engine)
    found: dict[str, str] = {}
    with ledger.engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(select(table)).all()
            found[f"ledger {table.name}"] = "\n".join(repr(tuple(row)) for row in rows)
            found[f"ledger {table.name} values"] = "\n".join(
                str(value) for row in rows for value in row if value is not None
            )
    return found


def redis_texts(client: Any) -> dict[str, str]:  # a redis.Redis
    """Every value in the stack's Redis database, by key, with Celery bodies decoded."""
    found: dict[str, str] = {}
    for raw in client.scan_iter("*"):
        key = raw.decode()
        found[f"redis {key}"] = "\n".join(_decoded(v) for v in _values(client, raw))
    return found


def _values(client: Any, key: bytes) -> list[bytes]:  # redis-py's types: bytes | str
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [part for item in client.hgetall(key).items() for part in item]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == "stream":
        return [v for _, entry in client.xrange(key) for item in entry.items() for v in item]
    raise AssertionError(f"unexpected Redis type {kind} at {key!r}")


def _decoded(value: bytes) -> str:
    """The value as text, plus a kombu message's base64 body decoded."""
    text = value.decode(errors="replace")
    try:
        message = json.loads(text)
    except ValueError:
        return text
    if isinstance(message, dict) and message.get("properties", {}).get("body_encoding") == "base64":
        text += "\n" + base64.b64decode(message["body"]).decode(errors="replace")
    return text
