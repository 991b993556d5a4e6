"""The operator's console and the API explorer, served by ``threadcast api`` itself, so both
work with no internet: ``/`` the console's page, ``/console/{file}`` its script and style,
``/docs`` Swagger UI with its files from the swagger-ui-bundle package (``/docs/assets``),
reading the OpenAPI document as 3.0 (``/docs/openapi-3.0.json``: that Swagger UI predates 3.1).

None of these needs a key (the gate guards ``/v1/`` and ``/metrics`` only): the page holds
no data. The console asks ``/v1`` for everything with ``Authorization: Bearer`` and the key
kept in the browser tab's sessionStorage, never in a URL -- so a key may do in the console
exactly what it may do in the API (docs/CONSOLE.md).
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from producer.api.errors import error_response
from producer.api.openapi30 import as_openapi_30

CONSOLE = Path(__file__).with_name("console")
SWAGGER = Path(swagger_ui_bundle.swagger_ui_path)
#: What the console serves, and as what; nothing else under /console resolves.
CONSOLE_FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
#: The page runs only what threadcast serves: no inline script, nothing from elsewhere.
CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def page() -> Response:
    headers = _NO_CACHE | {
        "Content-Security-Policy": CONSOLE_POLICY,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return FileResponse(CONSOLE / "index.html", media_type="text/html", headers=headers)


@router.get("/console/{name}")
def asset(name: str) -> Response:
    if name not in CONSOLE_FILES:
        return error_response(404, "no such file")
    headers = _NO_CACHE | {"X-Content-Type-Options": "nosniff"}
    return FileResponse(CONSOLE / name, media_type=CONSOLE_FILES[name], headers=headers)


@router.get("/docs/assets/{name}")
def swagger_asset(name: str) -> Response:
    if name not in SWAGGER_FILES:
        return error_response(404, "no such file")
    return FileResponse(SWAGGER / name, media_type=SWAGGER_FILES[name])


def install(app: FastAPI) -> None:
    """The console's routes and ``/docs`` (the app is built with ``docs_url=None``: FastAPI's
    own page loads Swagger UI from a CDN)."""
    title = f"{app.title} API"

    @app.get("/docs/openapi-3.0.json", include_in_schema=False)
    def openapi_30() -> JSONResponse:
        return JSONResponse(as_openapi_30(app.openapi()) | {"openapi": "3.0.3"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/docs/openapi-3.0.json",
            title=title,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.include_router(router)
