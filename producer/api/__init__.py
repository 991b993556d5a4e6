"""The HTTP API (``threadcast api``): other services send and follow broadcasts over HTTP.

:func:`create_app` builds the ASGI app for a ``Settings``; docs/API.md describes the routes.
"""

from __future__ import annotations

from producer.api.app import create_app

__all__ = ["create_app"]
