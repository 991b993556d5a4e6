"""The baseline the limits benchmark compares against: a plain Celery task with ``rate_limit``.

No gate, no ledger: the task POSTs straight to the simulator, limited only by Celery's own
per-worker ``rate_limit`` set to the tenant limit, with Celery's default prefetch. Tokens come
from a file the benchmark writes (this is a rehearsal against the simulator, never production).

    celery -A bench.plain_celery worker -Q plain -c 4
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import httpx
from celery import Celery

BODY = b'{"rootMessage":{"body":{"contentType":1,"content":"<p>plain celery</p>"}}}'

app = Celery("plain", broker=os.environ.get("PLAIN_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue="plain",
)


@cache
def _client() -> httpx.Client:
    return httpx.Client(verify=os.environ["PLAIN_CA"], timeout=30)


@cache
def _tokens() -> dict[str, str]:
    with open(os.environ["PLAIN_TOKENS"]) as f:
        return dict(json.load(f))


@app.task(name="plain.post", rate_limit=os.environ.get("PLAIN_RATE", "20/s"))  # type: ignore[untyped-decorator]
def post(tenant: str, group: str, channel: str) -> Any:
    url = f"{os.environ['PLAIN_GRAPH']}/beta/groups/{group}/channels/{channel}/chatthreads"
    headers = {"Authorization": f"Bearer {_tokens()[tenant]}", "Content-Type": "application/json"}
    return _client().post(url, content=BODY, headers=headers).status_code
