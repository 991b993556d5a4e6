"""The consumer side: a Celery app whose task posts one delivery to Microsoft Graph.

``celery -A worker worker`` finds ``worker.app``; it is built on first access, from the
environment's settings, so importing this package does nothing by itself.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _default_app() -> Any:
    from threadcast.settings import load_settings
    from worker.celery_app import create_app

    return create_app(load_settings())


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        return _default_app()
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
