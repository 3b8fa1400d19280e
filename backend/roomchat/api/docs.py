"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from a package, under a strict CSP.

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN and bootstrap them with an
inline script, so they had no Content-Security-Policy at all, and a CDN's script ran on
this origin. These pages are built by the same FastAPI helpers, but their script and
style come from the copies packaged in ``fastapi-offline`` (the same swagger-ui-dist 5 and
ReDoc 2 bundles), served here under ``/docs-assets``. Each page's policy allows this
origin's files and, by its SHA-256 hash, exactly the inline script the helper wrote.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from roomchat.api.asyncapi import ASYNCAPI_URL, asyncapi_document

ASSETS_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))
ASSETS_URL = "/docs-assets"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

_INLINE = {
    tag: re.compile(rf"<{tag}(?![^>]*\bsrc=)[^>]*>(.*?)</{tag}>", re.S)
    for tag in ("script", "style")
}


def install(app: FastAPI) -> None:
    """Add the docs routes and their assets to ``app`` (built with ``docs_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    title = app.title

    def swagger_ui(root: str) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url if app.openapi_url else "",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    def redoc(root: str) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=root + app.openapi_url if app.openapi_url else "",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    def oauth2_redirect(_root: str) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # ReDoc styles itself with <style> elements it makes as it runs (styled-components),
    # which no hash can name; its search index runs in a worker started from a blob.
    app.add_api_route(DOCS_URL, _page(swagger_ui), include_in_schema=False)
    app.add_api_route(
        REDOC_URL,
        _page(redoc, styles="'self' 'unsafe-inline'", workers="'self' blob:"),
        include_in_schema=False,
    )
    app.add_api_route(OAUTH2_REDIRECT_URL, _page(oauth2_redirect), include_in_schema=False)

    async def asyncapi_json() -> JSONResponse:
        """The WebSocket protocol (AsyncAPI 3), beside the HTTP API's OpenAPI document."""
        return JSONResponse(asyncapi_document())

    app.add_api_route(ASYNCAPI_URL, asyncapi_json, include_in_schema=False)


def _page(
    build: Callable[[str], HTMLResponse], *, styles: str | None = None, workers: str = "'none'"
) -> Callable[[Request], Awaitable[HTMLResponse]]:
    """A route answering ``build(root_path)`` with its own policy, both made once per root."""
    made: dict[str, tuple[bytes, str]] = {}

    async def route(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        if root not in made:
            body = bytes(build(root).body)
            made[root] = (body, policy(body.decode(), styles=styles, workers=workers))
        body, csp = made[root]
        return HTMLResponse(body, headers={"Content-Security-Policy": csp})

    return route


def policy(page: str, *, styles: str | None, workers: str) -> str:
    """This origin's files, the page's own inline script and style by hash, and no more."""
    scripts = " ".join(["'self'", *_hashes(page, "script")])
    styles = styles or " ".join(["'self'", *_hashes(page, "style")])
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            f"worker-src {workers}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _hashes(page: str, tag: str) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE[tag].findall(page)
    ]
