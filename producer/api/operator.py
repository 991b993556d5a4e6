"""Routes only an operator key may call (``operator@name:key``): what they show is the whole
deployment's (every tenant's sign-in, the health ``threadcast doctor`` checks), not one
key's broadcasts. Another key gets ``403`` saying so, before anything is read."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from producer.api.models import ErrorBody
from threadcast.apikeys import ApiKey

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "not an operator key"}
}


def require_operator(key: ApiKey, what: str) -> None:
    """Refuse ``key`` unless it is an operator's; ``what`` completes "this key may not ..."."""
    if not key.operator:
        raise HTTPException(
            403,
            f"this key ({key.name}) may not {what}: that needs an operator key "
            "(operator@name:key in THREADCAST_API_KEYS)",
        )
