"""The seam where throttling and fault injection plug into the Graph endpoint.

A policy sees every valid, authenticated chatthreads request twice: before it is accepted
(it may wait, or raise :class:`~simulator.errors.GraphError`, e.g. 429 with Retry-After for a
scope over its limit, or 503/504) and after it was recorded (it may delay the answer or break
the connection: the post then exists although the client never hears so). None ship yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from simulator.posts import PostAttempt, RecordedPost


class Policy(Protocol):
    async def before_accept(self, attempt: PostAttempt) -> None: ...

    async def after_accept(self, post: RecordedPost) -> None: ...


class PolicyChain:
    """Runs the policies in order; the first one to raise decides the answer."""

    def __init__(self, policies: Sequence[Policy] = ()) -> None:
        self._policies = tuple(policies)

    async def before_accept(self, attempt: PostAttempt) -> None:
        for policy in self._policies:
            await policy.before_accept(attempt)

    async def after_accept(self, post: RecordedPost) -> None:
        for policy in self._policies:
            await policy.after_accept(post)
