"""Counters the admin API reports: Graph rejections by status, token endpoint calls by tenant,
v1.0 message versions by kind."""

from __future__ import annotations

from collections import Counter, defaultdict

_TOKEN_COUNTERS = ("device_code", "refresh_token", "invalid_grant")
MESSAGE_COUNTERS = ("created", "edited", "soft_deleted", "soft_delete_repeats")


class Counters:
    def __init__(self) -> None:
        self.rejected: Counter[int] = Counter()
        self.token_calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.messages: Counter[str] = Counter()
        """v1.0 message versions by kind (:class:`~simulator.messages.MessageStore` counts)."""

    def reject(self, status: int) -> None:
        self.rejected[status] += 1

    def token_call(self, tenant: str, grant: str) -> None:
        self.token_calls[tenant][grant] += 1

    def invalid_grant(self, tenant: str) -> None:
        self.token_calls[tenant]["invalid_grant"] += 1

    def rejected_json(self) -> dict[str, int]:
        return {str(status): n for status, n in sorted(self.rejected.items())}

    def token_calls_json(self) -> dict[str, dict[str, int]]:
        return {
            tenant: {name: calls[name] for name in (*_TOKEN_COUNTERS, *sorted(calls))}
            for tenant, calls in sorted(self.token_calls.items())
        }

    def messages_json(self) -> dict[str, int] | None:
        """``{"created", "edited", "soft_deleted", "soft_delete_repeats"}``; None until a
        v1.0 message exists (so that the stats of a rehearsal without any keep their shape)."""
        if not self.messages:
            return None
        return {name: self.messages[name] for name in MESSAGE_COUNTERS}

    def reset(self) -> None:
        self.rejected.clear()
        self.token_calls.clear()
        self.messages.clear()
