"""The ASGI application: routes, error answers, and the middleware in front of them.

Outermost first: count every request, refuse a missing or wrong key, cap the body, then
FastAPI (validation, routes, error handlers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from producer.api import (
    broadcasts,
    console,
    details,
    errors,
    health,
    ops,
    schedules,
    tenants,
    webhooks,
)
from producer.api.auth import ApiKeyGate
from producer.api.instrument import RequestCounter
from producer.api.limits import BodyLimit
from producer.api.services import Services
from threadcast.apikeys import parse_api_keys
from threadcast.settings import Settings

TITLE = "threadcast"
VERSION = "1"
DESCRIPTION = (
    "Post announcements into Microsoft Teams channels. Send a broadcast, then follow its "
    "deliveries. Every /v1 route needs `Authorization: Bearer <API key>`."
)


def create_app(settings: Settings) -> FastAPI:
    """The API for ``settings``; refuses to build without ``THREADCAST_API_KEYS``."""
    settings.require("api_keys")
    assert settings.api_keys is not None
    keys = parse_api_keys(settings.api_keys.get_secret_value())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.open(settings)
        try:
            yield
        finally:
            app.state.services.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,  # console.install serves /docs with Swagger UI's files, no CDN
    )
    errors.install(app)
    # details first: broadcasts' GET /{id} takes any text as an id, /{id}/progress too.
    app.include_router(details.router)
    app.include_router(broadcasts.router)
    app.include_router(schedules.router)
    app.include_router(tenants.router)
    app.include_router(health.router)
    app.include_router(webhooks.router)  # operator keys only
    app.include_router(ops.router)
    console.install(app)
    # add_middleware wraps what is there: the last added runs first.
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(ApiKeyGate, keys=keys)
    app.add_middleware(RequestCounter)
    return app
